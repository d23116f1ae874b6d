-- wrk script for `make bench`: rotate over requests prepared in a file.
--
-- Usage: wrk ... -s bench/rotate.lua URL -- FILE THREADS MODE
--   FILE     one request a line, tab-separated: METHOD, PATH, AUTHORIZATION or "-",
--            CONTENT-TYPE or "-", BODY or "-"
--   THREADS  the -t given to wrk; thread N takes lines N, N+THREADS, N+2*THREADS, ...
--            so no two threads ever send the same line (in "cycle" mode a file with
--            fewer lines than threads is sent whole by every thread)
--   MODE     "cycle" to go round the lines again and again (tokens may be reused), or
--            "once" when each line may be sent only once (each client assertion has a
--            jti the server accepts once): going round again is counted as "wraps"
--
-- done() prints one line, "BENCH_JSON {...}", with the request count, the latency
-- percentiles and every response counted by status class, for bench/run.py to parse.

local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

local function split(line)
   local fields = {}
   for field in (line .. "\t"):gmatch("([^\t]*)\t") do
      table.insert(fields, field)
   end
   return fields
end

function init(args)
   local path, nthreads, mode = args[1], tonumber(args[2]), args[3]
   once = mode == "once"
   local all = {}
   for line in io.lines(path) do
      if line ~= "" then table.insert(all, line) end
   end
   -- In "cycle" mode a file with fewer lines than threads (GET /healthz) is shared.
   local share = once or #all >= nthreads
   prepared = {}
   for i, line in ipairs(all) do
      if not share or (i - 1) % nthreads == id then
         local f = split(line)
         local headers = {}
         if f[3] ~= "-" then headers["Authorization"] = f[3] end
         if f[4] ~= "-" then headers["Content-Type"] = f[4] end
         local body = nil
         if f[5] ~= "-" then body = f[5] end
         table.insert(prepared, wrk.format(f[1], f[2], headers, body))
      end
   end
   lines = #prepared
   if lines == 0 then
      error("no requests for thread " .. id .. " in " .. path)
   end
   nxt = 0
   wraps = 0
   s1, s2, s3, s4, s5 = 0, 0, 0, 0, 0
   sample = ""
end

function request()
   nxt = nxt + 1
   if nxt > lines then
      nxt = 1
      if once then wraps = wraps + 1 end
   end
   return prepared[nxt]
end

function response(status, headers, body)
   local class = math.floor(status / 100)
   if class == 2 then s2 = s2 + 1
   elseif class == 3 then s3 = s3 + 1
   elseif class == 4 then s4 = s4 + 1
   elseif class == 5 then s5 = s5 + 1
   else s1 = s1 + 1 end
   if class ~= 2 and sample == "" then
      sample = status .. " " .. string.sub(body or "", 1, 300)
   end
end

function done(summary, latency, requests)
   local total = { s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, wraps = 0, lines = 0 }
   local first = ""
   for _, thread in ipairs(threads) do
      for name, _ in pairs(total) do
         total[name] = total[name] + (thread:get(name) or 0)
      end
      local s = thread:get("sample")
      if first == "" and s ~= nil then first = s end
   end
   first = string.gsub(first, '[%c"\\]', " ")
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"mean_us": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
      '"connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
      '"status_errors": %d, "timeouts": %d, ' ..
      '"s1xx": %d, "s2xx": %d, "s3xx": %d, "s4xx": %d, "s5xx": %d, ' ..
      '"wraps": %d, "lines": %d, "sample": "%s"}\n',
      summary.requests, summary.duration, summary.bytes,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout,
      total.s1, total.s2, total.s3, total.s4, total.s5,
      total.wraps, total.lines, first))
end
