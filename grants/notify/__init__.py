"""Notifications: a transactional outbox (grants.models.Notification) and pluggable
senders (console, SMTP, signed webhook). Messages never carry story or record content."""
