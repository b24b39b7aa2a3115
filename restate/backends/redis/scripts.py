"""The Lua scripts of the Redis backend: every read, write and commit runs as one atomic script.

Layout (see ``restate.backends.redis``): every key of one tree starts with its hash-tagged
keyspace ``T`` (``{prefix}``), so a tree lives in one Redis Cluster slot. The directory at
path ``D`` is the hash ``T:n:D``; its field ``name`` holds the JSON text of a leaf child, or
``MARK`` (a NUL byte, never valid JSON) when the child ``D/name`` is a directory. A directory's
hash exists only while that directory exists, so a node is found with one ``HGET`` on its
parent.

Every script declares ``KEYS[1] = T:changes`` (which names the slot, as Redis Cluster needs)
and derives the other key names of the same keyspace from it.

Leases (transactions, see ``core.py``): ``T:leases`` maps a leased path to ``"token start"``;
``T:lease:<token>`` exists (with a short PX expiry, renewed while the transaction lives) as
long as that transaction is alive. A lease whose ``T:lease:<token>`` expired is dead and is
swept by the next script that looks.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "APPLY",
    "LEASE",
    "LIBRARY",
    "LIBRARY_NAME",
    "OCCUPIED",
    "POSITION",
    "PROBE",
    "PUT",
    "READ",
    "RELEASE",
    "SOURCES",
    "WALK",
    "function_name",
]

_HEADER = r"""
local MARK = '\0'
-- the keyspace of the call, set by bind() first thing in every script: a Functions library
-- defines these helpers once, so they read it from here rather than from KEYS
local T, LEASES, KEYS_STREAM
local function bind(stream)
  T = string.sub(stream, 1, #stream - 8)
  LEASES = T .. ':leases'
  KEYS_STREAM = stream
end
local function key(path) return T .. ':n:' .. path end
local function child(path, name)
  if path == '/' then return '/' .. name end
  return path .. '/' .. name
end
local function split(path)
  local parent, name = string.match(path, '^(.*)/([^/]+)$')
  if parent == '' then parent = '/' end
  return parent, name
end
local function segments(path)
  local segs = {}
  for s in string.gmatch(path, '[^/]+') do segs[#segs + 1] = s end
  return segs
end
-- JSON text of the directory at path, built from the stored JSON of its leaves; nil when
-- it holds more than budget[1] fields in all (the client then reads it in chunks)
local function dump(path, budget)
  local k = key(path)
  if budget then
    budget[1] = budget[1] - redis.call('HLEN', k)
    if budget[1] < 0 then return nil end
  end
  local flat = redis.call('HGETALL', k)
  local out = {}
  for i = 1, #flat, 2 do
    local v = flat[i + 1]
    if v == MARK then
      v = dump(child(path, flat[i]), budget)
      if not v then return nil end
    end
    out[#out + 1] = cjson.encode(flat[i]) .. ':' .. v
  end
  return '{' .. table.concat(out, ',') .. '}'
end
-- JSON text of the node at path, false when it is missing, {'big'} over the budget
local function node(path, budget)
  local v
  if path == '/' then
    v = dump('/', budget)
  else
    local parent, name = split(path)
    v = redis.call('HGET', key(parent), name)
    if v ~= MARK then return v end
    v = dump(path, budget)
  end
  if not v then return {'big'} end
  return v
end
-- the strict ancestors of path: 'dir' when all are directories, else the kind and depth
-- of the first one that is not ('missing' or 'leaf')
local function probe(path)
  local segs, cur = segments(path), '/'
  for i = 1, #segs - 1 do
    local v = redis.call('HGET', key(cur), segs[i])
    if not v then return 'missing', i, segs end
    if v ~= MARK then return 'leaf', i, segs end
    cur = child(cur, segs[i])
  end
  return 'dir', 0, segs
end
local function occupied(path, ignore)
  if path ~= '/' then
    local parent, name = split(path)
    local v = redis.call('HGET', key(parent), name)
    if not v then return 0 end
    if v ~= MARK then return 1 end
  end
  local n = redis.call('HLEN', key(path))
  for _, name in ipairs(ignore) do n = n - redis.call('HEXISTS', key(path), name) end
  if n > 0 then return 1 end
  return 0
end
-- a and b are the same path or one is an ancestor of the other
local function related(a, b)
  if a == b or a == '/' or b == '/' then return true end
  if #a > #b then a, b = b, a end
  return string.sub(b, 1, #a + 1) == a .. '/'
end
-- the live lease of another transaction on path, an ancestor or a descendant: its holder,
-- start and leased path, or nil; dead leases found on the way are removed
local function blocker(path, token)
  if redis.call('HLEN', LEASES) == 0 then return nil end
  local flat, alive = redis.call('HGETALL', LEASES), {}
  local found, found_start, found_path
  for i = 1, #flat, 2 do
    local holder, start = string.match(flat[i + 1], '^(%S+) (%S+)$')
    if alive[holder] == nil then
      alive[holder] = redis.call('EXISTS', T .. ':lease:' .. holder) == 1
    end
    if not alive[holder] then
      redis.call('HDEL', LEASES, flat[i])
    elseif holder ~= token and not found and related(flat[i], path) then
      found, found_start, found_path = holder, start, flat[i]
    end
  end
  return found, found_start, found_path
end
-- Waiting in turn (leases.py): T:q:<path> orders the clients waiting for a lease on path by
-- first arrival (a sorted set, in microseconds); T:q:<path>:d holds each one's deadline and
-- start. Asking again moves the deadline on (WAIT_MS); a waiter that stopped asking (killed,
-- interrupted, gave up) loses its place at its deadline. T:wake:<id> is the wake-up list of
-- waiter id.
local WAIT_MS = 300
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function wakeup(id)
  local k = T .. ':wake:' .. id
  if redis.call('LPUSH', k, '1') == 1 then
    redis.call('PEXPIRE', k, 5000)
  else
    redis.call('LTRIM', k, 0, 0)
  end
end
-- the live waiter first in line for path and its start, or nil; dead ones are dropped
local function turn(path)
  local q = T .. ':q:' .. path
  if redis.call('EXISTS', q) == 0 then return nil end
  local now = now_ms()
  while true do
    local first = redis.call('ZRANGE', q, 0, 0)[1]
    if not first then return nil end
    local info = redis.call('HGET', q .. ':d', first)
    if info then
      local deadline, start = string.match(info, '^(%S+) (%S+)$')
      if tonumber(deadline) >= now then return first, start end
    end
    redis.call('ZREM', q, first)
    redis.call('HDEL', q .. ':d', first)
  end
end
-- id waits for path (keeping its place when it waits already)
local function enqueue(path, id, start)
  local q, t = T .. ':q:' .. path, redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- ordered by the microsecond of arrival: scripts run one at a time, so no two tie
  redis.call('ZADD', q, 'NX', tonumber(t[1]) * 1000000 + tonumber(t[2]), id)
  redis.call('HSET', q .. ':d', id, (now + WAIT_MS) .. ' ' .. start)
  redis.call('PEXPIRE', q, 2 * WAIT_MS)
  redis.call('PEXPIRE', q .. ':d', 2 * WAIT_MS)
end
-- id stops waiting for path; with wake, the next in line is woken (path may be free: not when
-- id leaves the line because it took the lease on path, whose release wakes the next)
local function dequeue(path, id, wake)
  local q = T .. ':q:' .. path
  if redis.call('ZREM', q, id) == 1 then redis.call('HDEL', q .. ':d', id) end
  if not wake then return end
  local next_id = turn(path)
  if next_id then wakeup(next_id) end
end
-- drop every lease of token, waking the first in line for each path it held
local function release(token)
  local flat = redis.call('HGETALL', LEASES)
  for i = 1, #flat, 2 do
    if string.match(flat[i + 1], '^(%S+) ') == token then
      redis.call('HDEL', LEASES, flat[i])
      local next_id = turn(flat[i])
      if next_id then wakeup(next_id) end
    end
  end
  redis.call('DEL', T .. ':lease:' .. token)
end
local function drop(path)
  local flat = redis.call('HGETALL', key(path))
  for j = 1, #flat, 2 do
    if flat[j + 1] == MARK then drop(child(path, flat[j])) end
  end
  redis.call('DEL', key(path))
end

-- remove the node at path (the root only empties); its JSON text, or false when missing
-- remove the node at path (the root only empties); its JSON text, false when missing, or nil
-- (nothing removed) when it is a directory of more than budget[1] fields (budget: optional)
local function remove(path, budget)
  if path == '/' then
    local prev = dump('/', budget)
    if prev then drop('/') end
    return prev
  end
  local parent, name = split(path)
  local v = redis.call('HGET', key(parent), name)
  if not v then return false end
  if v == MARK then
    v = dump(path, budget)
    if not v then return nil end
    drop(path)
  end
  redis.call('HDEL', key(parent), name)
  return v
end

local function make_parents(path)
  local kind, depth, segs = probe(path)
  if kind ~= 'missing' then return end
  local cur = '/'
  for j = 1, #segs - 1 do
    if j >= depth then redis.call('HSET', key(cur), segs[j], MARK) end
    cur = child(cur, segs[j])
  end
end

local function store(ARGV, first, last)
  local j = first
  while j <= last do
    local k, n = key(ARGV[j]), tonumber(ARGV[j + 1])
    local from = j + 2
    while n > 0 do
      local take = math.min(n, 500)
      redis.call('HSET', k, unpack(ARGV, from, from + 2 * take - 1))
      from, n = from + 2 * take, n - take
    end
    j = from
  end
end

-- Keep the stream within maxlen entries and maxbytes bytes, dropping its oldest entries
-- (exactly: XTRIM MINID). T:bytes counts the bytes of the entries in the stream: the JSON text
-- of their changes plus ENTRY_BYTES each; the newest entry always stays.
local ENTRY_BYTES = 64
local function trim(stream, maxlen, maxbytes, added)
  local BYTES = T .. ':bytes'
  local n, total = redis.call('XLEN', stream), 0
  if n == 1 then
    total = added  -- a new stream: nothing older is counted
    redis.call('SET', BYTES, added)
  else
    total = redis.call('INCRBY', BYTES, added)
  end
  if total <= maxbytes and n <= maxlen then return end
  local after, keep = '-', nil
  while not keep do
    local batch = redis.call('XRANGE', stream, after, '+', 'COUNT', 100)
    if #batch == 0 then return end  -- the count was wrong (the stream changed under us)
    for _, e in ipairs(batch) do
      if n <= 1 or (total <= maxbytes and n <= maxlen) then
        keep = e[1]
        break
      end
      local f, size = e[2], ENTRY_BYTES
      for j = 1, #f, 2 do if f[j] == 'c' then size = size + #f[j + 1] end end
      total, n, after = total - size, n - 1, '(' .. e[1]
    end
  end
  redis.call('XTRIM', stream, 'MINID', keep)
  redis.call('SET', BYTES, math.max(total, 0))
end
-- append the stream record of one change (JSON texts; false: missing) to changes, its path
-- to paths (for remember())
local function record(changes, paths, path, prev, new)
  local s = '{"p":' .. cjson.encode(path)
  if prev then s = s .. ',"o":' .. prev end
  if new then s = s .. ',"n":' .. new end
  changes[#changes + 1] = s .. '}'
  paths[#paths + 1] = path
end

-- T:since scores each path written with the sequence number of its last change, so a
-- follower that missed trimmed entries re-reads only what changed (walk.py, changed_since).
-- Past 10 x maxlen paths the oldest go; T:floor keeps the highest score dropped (or, when
-- T:since is new -- a tree from before it, an evicted key --, the last one it did not see:
-- every member added and the set holding only those means it was new).
local function remember(paths, seq, maxlen)
  local since, z, added = T .. ':since', {}, 0
  for i = 1, #paths do
    z[#z + 1] = seq
    z[#z + 1] = paths[i]
    if #z >= 1000 then added = added + redis.call('ZADD', since, unpack(z)); z = {} end
  end
  if #z > 0 then added = added + redis.call('ZADD', since, unpack(z)) end
  if added > 0 and added == redis.call('ZCARD', since) then
    redis.call('SET', T .. ':floor', seq - 1)
  end
  if seq % 100 == 0 then
    local extra = redis.call('ZCARD', since) - 10 * tonumber(maxlen)
    if extra > 0 then
      local gone = redis.call('ZPOPMIN', since, extra)
      redis.call('SET', T .. ':floor', gone[#gone])
    end
  end
end
-- one stream entry {o: origin, s: sequence number, c: JSON text of the changes, w: write id}
-- (bounded by maxlen, or exactly by maxlen and maxbytes); its id
local function append(stream, origin, wid, maxlen, maxbytes, entry, paths)
  local seq = redis.call('INCR', T .. ':seq')
  local id
  if maxbytes == '' then
    id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'o', origin, 's', seq,
      'c', entry, 'w', wid)
  else
    id = redis.call('XADD', stream, '*', 'o', origin, 's', seq, 'c', entry, 'w', wid)
    trim(stream, tonumber(maxlen), tonumber(maxbytes), #entry + ENTRY_BYTES)
  end
  remember(paths, seq, maxlen)
  return id
end

-- Idempotent retries. A write whose reply was lost (the connection dropped) is sent again
-- with retry = the milliseconds it may have been applied in (calls.py); its write id rides in
-- its stream entry ('w'), so the resend looks for it among the entries of that window instead
-- of every write recording its id. Returns the changes of its entry (applied already), nil
-- (not applied: the stream covers the window and it is not there) or false (cannot tell: the
-- stream was trimmed inside the window, or more than SCAN_MAX entries are in it).
local SCAN_MAX, SCAN_STEP = 3000, 250
local function replayed(stream, origin, wid, window)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(window)
  local bound = string.format('%.0f', math.max(ms, 0))
  local top, seen = '+', 0
  while seen < SCAN_MAX do
    local batch = redis.call('XREVRANGE', stream, top, bound, 'COUNT', SCAN_STEP)
    for _, e in ipairs(batch) do
      local f = e[2]  -- o, origin, s, seq, c, changes, w, wid (append)
      if f[2] == origin and f[8] == wid then return f[6] end
    end
    seen = seen + #batch
    if #batch < SCAN_STEP then
      -- the whole window is read when the stream holds an entry before it, or was never
      -- trimmed (its first entry is the first commit); else entries of it may be gone
      local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
      if not first then
        if redis.call('EXISTS', T .. ':seq') == 0 then return nil end
        return false
      end
      local first_ms = tonumber(string.match(first[1], '^(%d+)'))
      if first_ms < ms or first[2][4] == '1' then return nil end
      return false
    end
    top = '(' .. batch[#batch][1]
  end
  return false
end
-- fields a plain write or delete may replace in one script (a few ms); beyond, big.py
local BIG = 5000

-- A write's retry check (see replayed): a reply for the caller, or nil to go on
local function retried(origin, wid, retry)
  if retry == '' then return nil end
  local done = replayed(KEYS_STREAM, origin, wid, retry)
  if done then return {'done', done} end
  if done == false then return {'unsure'} end
  return nil
end

-- Run the ops of ARGV from index i (see APPLY) for a write A = {origin, maxlen, maxbytes,
-- token, wid, want, waited}; the reply of APPLY
local function apply_ops(A, ARGV, i)
  local origin, token, wid, want, waited = A[1], A[4], A[5], A[6], A[7]
  if token ~= '' and redis.call('EXISTS', T .. ':lease:' .. token) == 0 then return {'lost'} end
  -- a plain write kept waiting by a lease waits in line for it (never ahead of it: it takes
  -- no lease, so nobody waits for it), as origin:wid
  local function busy(holder, since, held)
    enqueue(held, origin .. ':' .. wid, '0')
    return {'busy', holder, since, held}
  end
  local changes, paths, first_prev = {}, {}, false
  -- the hot path: one leaf written over a leaf ('w', path, json, '1', dir, '1', name, json);
  -- a leaf's parent exists, so nothing needs probing, creating or removing
  local leaf = #ARGV == i + 7 and ARGV[i] == 'w' and ARGV[i + 1] ~= '/' and ARGV[i + 3] == '1'
    and ARGV[i + 5] == '1' and ARGV[i + 7] ~= MARK
  local prev
  if leaf then
    if token == '' then
      local holder, since, held = blocker(ARGV[i + 1], token)
      if holder then return busy(holder, since, held) end
    end
    prev = redis.call('HGET', key(ARGV[i + 4]), ARGV[i + 6])
    leaf = prev and prev ~= MARK
  end
  if leaf then
    if want == '1' and prev == ARGV[i + 2] then
      if waited ~= '' then dequeue(waited, origin .. ':' .. wid, true) end
      return {'ok', '', prev}
    end
    redis.call('HSET', key(ARGV[i + 4]), ARGV[i + 6], ARGV[i + 2])
    first_prev = prev
    record(changes, paths, ARGV[i + 1], prev, ARGV[i + 2])
  else
    local ops = {}
    while i <= #ARGV do
      local op = {kind = ARGV[i], path = ARGV[i + 1]}
      if token == '' then
        local holder, since, held = blocker(op.path, token)
        if holder then return busy(holder, since, held) end
      end
      if op.kind == 'w' then
        op.json, op.first = ARGV[i + 2], i + 4
        i = i + 4
        for _ = 1, tonumber(ARGV[op.first - 1]) do i = i + 2 + 2 * tonumber(ARGV[i + 1]) end
        op.last = i - 1
        local kind, depth = probe(op.path)
        if kind == 'leaf' then return {'conflict', op.path, depth} end
      else
        i = i + 2
      end
      ops[#ops + 1] = op
    end

    -- a swap of a leaf by the very same JSON text changes nothing: no write, no entry
    if want == '1' and #ops == 1 and ops[1].kind == 'w' and ops[1].path ~= '/' then
      local parent, name = split(ops[1].path)
      local v = redis.call('HGET', key(parent), name)
      if v and v == ops[1].json then
        if waited ~= '' then dequeue(waited, origin .. ':' .. wid, true) end
        return {'ok', '', v}
      end
    end

    -- a plain write or delete replacing more than BIG fields is done in chunks (big.py)
    local budget = nil
    if token == '' and #ops == 1 then budget = {BIG} end
    for n, op in ipairs(ops) do
      local prev = remove(op.path, budget)
      if prev == nil then return {'big'} end
      if n == 1 then first_prev = prev end
      if op.kind == 'w' then
        make_parents(op.path)
        store(ARGV, op.first, op.last)
        record(changes, paths, op.path, prev, op.json)
      elseif op.path == '/' then
        if prev ~= '{}' then record(changes, paths, '/', prev, '{}') end
      elseif prev then
        record(changes, paths, op.path, prev, false)
      end
    end
  end

  if token ~= '' then release(token) end
  if waited ~= '' then dequeue(waited, origin .. ':' .. wid, true) end
  if want ~= '1' then first_prev = false end
  if #changes == 0 then return {'ok', '', first_prev} end
  local entry = '[' .. table.concat(changes, ',') .. ']'
  local id = append(KEYS_STREAM, origin, wid, A[2], A[3], entry, paths)
  return {'ok', id, first_prev}
end
"""

# ARGV: path, budget (fields). The node's JSON text, false when missing, or {'big'} when its
# subtree holds more fields than the budget (read in chunks by the client: ``walk.py``)
_READ = r"""
return node(ARGV[1], {tonumber(ARGV[2])})
"""

# ARGV: budget, then directory paths. For each directory taken, in order, until the fields
# read pass the budget: {path, flat fields...}, or {path, '\0big'} for one with more fields
# than the budget (the client HSCANs it). At least one directory is taken.
_WALK = r"""
local total = tonumber(ARGV[1])
local left, out = total, {}
for i = 2, #ARGV do
  local k = key(ARGV[i])
  local n = redis.call('HLEN', k)
  if n > total then
    out[#out + 1] = {ARGV[i], MARK .. 'big'}
  elseif n > left then
    break
  else
    local entry = redis.call('HGETALL', k)
    table.insert(entry, 1, ARGV[i])
    out[#out + 1] = entry
    left = left - n
  end
end
return out
"""

# the stream position: the id and sequence number of the last entry
_POSITION = r"""
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
return {last and last[1] or '0-0', redis.call('GET', T .. ':seq') or '0'}
"""

# ARGV: path, then keys to ignore (distinct). 1 when the node at path is a leaf or a
# directory with a child outside them, else 0: reads two fields and a length, never a subtree
_OCCUPIED = r"""
return occupied(ARGV[1], {unpack(ARGV, 2)})
"""

_PROBE = r"""
local kind, depth = probe(ARGV[1])
return {kind, depth}
"""

# Take (or keep) the lease of a transaction on a path, then answer a question about it.
# ARGV: token, ttl ms, start, first ('1' for the transaction's first lease), waited (the path
# whose line it waited in after a 'busy' reply, or ''), mode, path, then the ignored names of
# 'occupied'. mode: 'read' | 'probe' | 'exists' | 'occupied' | 'none'. Replies {'busy',
# holder, start, path} (it now waits in line for path: see T:q), {'lost'} (this transaction's
# lease expired) or {'ok', answer...}.
_LEASE = r"""
local token, ttl, start, first, waited = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local mode, path = ARGV[6], ARGV[7]
local alive = T .. ':lease:' .. token
if first ~= '1' and redis.call('EXISTS', alive) == 0 then return {'lost'} end
local holder, since, held = blocker(path, token)
if holder then
  enqueue(held, token, start)
  return {'busy', holder, since, held}
end
if first == '1' then
  -- holding nothing, it takes its turn behind earlier waiters (one that holds leases goes
  -- ahead: waiting for a waiter could close a cycle that wait-die does not see)
  local next_id, next_start = turn(path)
  if next_id and next_id ~= token then
    enqueue(path, token, start)
    return {'busy', next_id, next_start, path}
  end
end
if waited ~= '' then dequeue(waited, token, waited ~= path) end
redis.call('HSET', LEASES, path, token .. ' ' .. start)
redis.call('SET', alive, '1', 'PX', ttl)
if mode == 'read' then return {'ok', node(path, {tonumber(ARGV[8])})} end
if mode == 'probe' then
  local kind, depth = probe(path)
  return {'ok', kind, depth}
end
if mode == 'exists' then
  if path == '/' then return {'ok', 1} end
  local parent, name = split(path)
  return {'ok', redis.call('HEXISTS', key(parent), name)}
end
if mode == 'occupied' then return {'ok', occupied(path, {unpack(ARGV, 8)})} end
return {'ok'}
"""

_RELEASE = r"""
release(ARGV[1])
return 1
"""

# ARGV: origin, stream maxlen, stream maxbytes ('' for none), token ('' outside a
# transaction), write id, retry ('' unless this is a resend of a write whose reply was lost:
# then the milliseconds in which it may have been applied, see ``replayed``), want ('1': reply
# with the previous JSON text of the only op), waited (the path whose line this write waited
# in after a 'busy' reply, or ''), then the ops:
#   'w', path, json, ngroups, (dir, npairs, name, value, name, value, ...) * ngroups
#   'd', path
# Replies {'ok', id, prev}, {'busy', holder, start, path} (a transaction of another client holds a
# lease on a written path), {'lost'} (this transaction's lease expired), {'done', changes} (a
# resend whose first sending was applied: the changes of its stream entry), {'unsure'} (a
# resend that cannot tell whether it was applied) or {'conflict', path, depth}; nothing is
# changed unless the reply is 'ok'. A transaction's commit also releases its leases.
_APPLY = r"""
local done = retried(ARGV[1], ARGV[5], ARGV[6])
if done then return done end
return apply_ops({ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7], ARGV[8]}, ARGV, 9)
"""

# A plain write of a leaf (a value that is not a dict) below the root: APPLY with fewer
# words, the hot path of ``set_state``. ARGV: origin, maxlen, maxbytes, write id, retry, want,
# waited (as APPLY), path, its parent directory, its name, JSON text. Replies as APPLY.
_PUT = r"""
local done = retried(ARGV[1], ARGV[4], ARGV[5])
if done then return done end
local path, dir, name, json, want, waited = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[6], ARGV[7]
-- the hot path, inline (no tables of ops, changes and paths): a leaf over a leaf while no
-- transaction holds a lease anywhere in the tree (else apply_ops checks them)
if waited == '' and redis.call('HLEN', LEASES) == 0 then
  local k = key(dir)
  local prev = redis.call('HGET', k, name)
  if prev and prev ~= MARK then
    if want == '1' and prev == json then return {'ok', '', prev} end
    redis.call('HSET', k, name, json)
    local entry = '[{"p":' .. cjson.encode(path) .. ',"o":' .. prev .. ',"n":' .. json .. '}]'
    local id = append(KEYS_STREAM, ARGV[1], ARGV[4], ARGV[2], ARGV[3], entry, {path})
    if want ~= '1' then prev = false end
    return {'ok', id, prev}
  end
end
return apply_ops({ARGV[1], ARGV[2], ARGV[3], '', ARGV[4], want, waited},
  {'w', path, json, '1', dir, '1', name, json}, 1)
"""
# Stage part of a big write (big.py) under T:s:<token>:<dir>, expiring in a minute.
# ARGV: token, then groups (dir, npairs, name, value, ...). Replies the fields staged.
_STAGE = r"""
local token, i, count = ARGV[1], 2, 0
while i <= #ARGV do
  local k, n = T .. ':s:' .. token .. ':' .. ARGV[i], tonumber(ARGV[i + 1])
  local from = i + 2
  while n > 0 do
    local take = math.min(n, 500)
    redis.call('HSET', k, unpack(ARGV, from, from + 2 * take - 1))
    from, n, count = from + 2 * take, n - take, count + take
  end
  redis.call('PEXPIRE', k, 60000)
  i = from
end
return count
"""

# The last step of a big write or delete (big.py), under the lease of token on path: the old
# directories go (UNLINK: freed in the background), the staged ones take their names (RENAME),
# one stream entry whose JSON text the client built (no big string is built here). ARGV:
# origin, maxlen, maxbytes, token, wid, retry (as APPLY), path, kind ('w' or 'd'), entry (''
# when nothing changes), old ('small': this script drops it; 'walked': the listed
# directories; 'missing'), the number of old directories, the old directories, then the
# staged ones. Replies {'ok', id}, {'done', changes} / {'unsure'} (a resend, as APPLY),
# {'lost'} or {'conflict', path, depth}.
_SWAP = r"""
local origin, maxlen, maxbytes, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local wid, path, kind, entry, old = ARGV[5], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local done = retried(origin, wid, ARGV[6])
if done then return done end
local n_old = tonumber(ARGV[11])
if redis.call('EXISTS', T .. ':lease:' .. token) == 0 then return {'lost'} end
for i = 12 + n_old, #ARGV do  -- staged parts that expired: nothing may change
  if redis.call('EXISTS', T .. ':s:' .. token .. ':' .. ARGV[i]) == 0 then return {'lost'} end
end
if kind == 'w' then
  local kind, depth = probe(path)
  if kind == 'leaf' then return {'conflict', path, depth} end
end
local parent, name
if path ~= '/' then parent, name = split(path) end
if old == 'small' then
  if path == '/' or redis.call('HGET', key(parent), name) == MARK then drop(path) end
else
  for i = 12, 11 + n_old do redis.call('UNLINK', key(ARGV[i])) end
end
if path ~= '/' then redis.call('HDEL', key(parent), name) end
if kind == 'w' then
  make_parents(path)
  for i = 12 + n_old, #ARGV do
    redis.call('RENAME', T .. ':s:' .. token .. ':' .. ARGV[i], key(ARGV[i]))
    redis.call('PERSIST', key(ARGV[i]))
  end
  if path ~= '/' then redis.call('HSET', key(parent), name, MARK) end
end
release(token)
if entry == '' then return {'ok', ''} end
return {'ok', append(KEYS[1], origin, wid, maxlen, maxbytes, entry, {path})}
"""

# Optimistic transactions (leases.py): a read that takes no lease (a check in front of LEASE,
# whose ARGV it takes as is), a commit that applies only if what was read is unchanged (checks
# in front of APPLY's ``apply_ops``).

# Bytes of a leaf read without a lease: a bigger one is leased (its commit would send it back)
_OPTIMISTIC_MAX = 4096

# ARGV as LEASE's (mode 'read'). A leaf of at most _OPTIMISTIC_MAX bytes that no other
# transaction leases and nobody waits in line for is read without a lease: {'free', json}.
# Anything else -- a directory, a missing node, a lease, a line, a waiter asking again -- takes
# the lease as LEASE does, in this same call.
_PEEK = (
    r"""
if ARGV[5] == '' and ARGV[7] ~= '/' and not blocker(ARGV[7], ARGV[1]) and not turn(ARGV[7]) then
  local parent, name = split(ARGV[7])
  local v = redis.call('HGET', key(parent), name)
  if v and v ~= MARK and #v <= """
    + str(_OPTIMISTIC_MAX)
    + r""" then return {'free', v} end
end
"""
    + _LEASE
)

# ARGV: origin, stream maxlen, stream maxbytes, token ('' when it holds no lease), write id,
# retry (as APPLY's), n, then n pairs (path, the JSON text read there without a lease), then
# APPLY's ops. Replies {'stale', path} -- that path changed, is leased by another transaction,
# or has writers waiting in line for it (an optimistic commit never goes ahead of them):
# nothing changed -- or what APPLY replies. A resend of a commit already applied is answered
# from the stream first (``retried``): its own write changed what it read.
_COMMIT = r"""
local done = retried(ARGV[1], ARGV[5], ARGV[6])
if done then return done end
local n = tonumber(ARGV[7])
for i = 8, 6 + 2 * n, 2 do
  local path = ARGV[i]
  if blocker(path, ARGV[4]) or turn(path) then return {'stale', path} end
  local parent, name = split(path)
  if redis.call('HGET', key(parent), name) ~= ARGV[i + 1] then return {'stale', path} end
end
return apply_ops({ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], '0', ''}, ARGV, 8 + 2 * n)
"""

_BODIES = {
    "read": _READ,
    "walk": _WALK,
    "position": _POSITION,
    "probe": _PROBE,
    "occupied": _OCCUPIED,
    "apply": _APPLY,
    "put": _PUT,
    "lease": _LEASE,
    "release": _RELEASE,
    "stage": _STAGE,
    "swap": _SWAP,
    "peek": _PEEK,
    "commit": _COMMIT,
}

# Each script as a standalone EVAL script (the fallback where the server has no Functions)
SOURCES = {name: _HEADER + "bind(KEYS[1])\n" + body for name, body in _BODIES.items()}
READ, WALK, POSITION, PROBE = (SOURCES[n] for n in ("read", "walk", "position", "probe"))
OCCUPIED, APPLY, LEASE, RELEASE = (SOURCES[n] for n in ("occupied", "apply", "lease", "release"))
PUT = SOURCES["put"]


def _library() -> tuple[str, str]:
    """The scripts as one Redis Functions library: the helpers are defined once, at load,
    instead of on every call. Its name carries a hash of its text, so processes running
    different versions of restate on one server each find their own."""
    digest = hashlib.sha1("".join(SOURCES.values()).encode()).hexdigest()[:12]
    name = f"restate_{digest}"
    parts = [f"#!lua name={name}\n", _HEADER]
    for fn, body in _BODIES.items():
        parts.append(
            f"redis.register_function{{function_name='{name}_{fn}', "
            f"callback=function(KEYS, ARGV)\nbind(KEYS[1])\n{body}end}}\n"
        )
    return name, "".join(parts)


LIBRARY_NAME, LIBRARY = _library()


def function_name(script: str) -> str:
    """The name of the function that runs ``script`` (a key of ``SOURCES``)."""
    return f"{LIBRARY_NAME}_{script}"
