"""The Lua scripts of the Redis backend: every read, write and commit runs as one atomic script.

Layout (see ``restate.backends.redis``): the directory at path ``D`` is the hash
``<prefix>:n:D``; its field ``name`` holds the JSON text of a leaf child, or ``MARK`` (a NUL
byte, never valid JSON) when the child ``D/name`` is a directory. A directory's hash exists
only while that directory exists, so a node is found with one ``HGET`` on its parent.
Scripts take the prefix as ``ARGV[1]`` and compute key names (single-instance Redis; not
cluster-safe by design).
"""

from __future__ import annotations

__all__ = ["APPLY", "OCCUPIED", "PROBE", "READ", "REFRESH", "RELEASE", "RESYNC"]

_HEADER = r"""
local P, MARK = ARGV[1], '\0'
local function key(path) return P .. ':n:' .. path end
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
-- JSON text of the directory at path, built from the stored JSON of its leaves
local function dump(path)
  local flat = redis.call('HGETALL', key(path))
  local out = {}
  for i = 1, #flat, 2 do
    local v = flat[i + 1]
    if v == MARK then v = dump(child(path, flat[i])) end
    out[#out + 1] = cjson.encode(flat[i]) .. ':' .. v
  end
  return '{' .. table.concat(out, ',') .. '}'
end
-- JSON text of the node at path, or false when it is missing
local function node(path)
  if path == '/' then return dump('/') end
  local parent, name = split(path)
  local v = redis.call('HGET', key(parent), name)
  if v == MARK then return dump(path) end
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
"""

READ = (
    _HEADER
    + r"""
return node(ARGV[2])
"""
)

# ARGV: prefix, path, then keys to ignore (distinct). 1 when the node at path is a leaf or a
# directory with a child outside them, else 0: reads two fields and a length, never a subtree
OCCUPIED = (
    _HEADER
    + r"""
local path = ARGV[2]
if path ~= '/' then
  local parent, name = split(path)
  local v = redis.call('HGET', key(parent), name)
  if not v then return 0 end
  if v ~= MARK then return 1 end
end
local n = redis.call('HLEN', key(path))
for i = 3, #ARGV do n = n - redis.call('HEXISTS', key(path), ARGV[i]) end
if n > 0 then return 1 end
return 0
"""
)

PROBE = (
    _HEADER
    + r"""
local kind, depth = probe(ARGV[2])
return {kind, depth}
"""
)

# the stream position (id and sequence number of the last entry) and the whole tree, together
RESYNC = (
    _HEADER
    + r"""
local last = redis.call('XREVRANGE', P .. ':changes', '+', '-', 'COUNT', 1)[1]
local seq = redis.call('GET', P .. ':seq') or '0'
return {last and last[1] or '0-0', seq, dump('/')}
"""
)

REFRESH = r"""
if redis.call('GET', ARGV[1] .. ':lock') == ARGV[2] then
  return redis.call('PEXPIRE', ARGV[1] .. ':lock', ARGV[3])
end
return 0
"""

RELEASE = r"""
if redis.call('GET', ARGV[1] .. ':lock') == ARGV[2] then
  return redis.call('DEL', ARGV[1] .. ':lock')
end
return 0
"""

# ARGV: prefix, origin, stream maxlen, lock token ('' outside a transaction), then the ops:
#   'w', path, json, ngroups, (dir, npairs, name, value, name, value, ...) * ngroups
#   'd', path
# Replies {'ok', id}, {'locked'}, {'lostlock'} or {'conflict', path, depth}; nothing is changed
# unless the reply is 'ok'.
APPLY = (
    _HEADER
    + r"""
local origin, maxlen, token = ARGV[2], ARGV[3], ARGV[4]
local lock = redis.call('GET', P .. ':lock')
if token == '' then
  if lock then return {'locked'} end
elseif lock ~= token then
  return {'lostlock'}
end

local ops, i = {}, 5
while i <= #ARGV do
  local op = {kind = ARGV[i], path = ARGV[i + 1]}
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

local function drop(path)
  local flat = redis.call('HGETALL', key(path))
  for j = 1, #flat, 2 do
    if flat[j + 1] == MARK then drop(child(path, flat[j])) end
  end
  redis.call('DEL', key(path))
end

-- remove the node at path (the root only empties); its JSON text, or false when missing
local function remove(path)
  if path == '/' then
    local prev = dump('/')
    drop('/')
    return prev
  end
  local parent, name = split(path)
  local v = redis.call('HGET', key(parent), name)
  if not v then return false end
  if v == MARK then
    v = dump(path)
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

local function store(first, last)
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

local changes = {}
local function record(path, prev, new)
  local s = '{"p":' .. cjson.encode(path)
  if prev then s = s .. ',"o":' .. prev end
  if new then s = s .. ',"n":' .. new end
  changes[#changes + 1] = s .. '}'
end

for _, op in ipairs(ops) do
  local prev = remove(op.path)
  if op.kind == 'w' then
    make_parents(op.path)
    store(op.first, op.last)
    record(op.path, prev, op.json)
  elseif op.path == '/' then
    if prev ~= '{}' then record('/', prev, '{}') end
  elseif prev then
    record(op.path, prev, false)
  end
end

if token ~= '' then redis.call('DEL', P .. ':lock') end
if #changes == 0 then return {'ok', ''} end
local seq = redis.call('INCR', P .. ':seq')
local id = redis.call('XADD', P .. ':changes', 'MAXLEN', '~', maxlen, '*',
  'o', origin, 's', seq, 'c', '[' .. table.concat(changes, ',') .. ']')
return {'ok', id}
"""
)
