"""Trees on a real local Redis Cluster (3 masters, 3 replicas): one hash-tagged slot per tree,
a ready RedisCluster client, followers, close(), and a failover of the shard holding a tree."""

from __future__ import annotations

import asyncio
import queue
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aredis
from redis.cluster import RedisCluster

from restate import ControllerSync
from restate.backends.base import MISSING
from restate.backends.redis import RESYNCED, RedisAsyncBackend, RedisBackend
from restate.backends.redis.scripts import LIBRARY_NAME
from restate.errors import BackendError
from tests.redis_fixture import RedisClusterServers, start_redis_cluster

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    servers = start_redis_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield servers
    finally:
        servers.stop()


def name() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


def test_a_tree_on_a_cluster_reads_writes_commits_and_notifies(cluster):
    prefix = name()
    with RedisBackend(cluster.url, prefix) as one, RedisBackend(cluster.url, prefix) as two:
        got: queue.Queue = queue.Queue()
        unwatch = two.watch(got.put)
        one.write("/users", {"1": {"name": "ann"}})
        with one.transaction():
            one.write("/users/2", {"name": one.read("/users/1/name") + "-bis"})
        ControllerSync(one).update("/n", lambda n: n + 1, default=0)
        assert two.read("/") == {"users": {"1": {"name": "ann"}, "2": {"name": "ann-bis"}},
                                 "n": 1}  # fmt: skip
        seen = [got.get(timeout=30)]
        while seen[-1][-1] != ("/n", MISSING, 1):
            seen.append(got.get(timeout=30))
        assert [c for call in seen for c in call] == [
            ("/users", MISSING, {"1": {"name": "ann"}}),
            ("/users/2", MISSING, {"name": "ann-bis"}),
            ("/n", MISSING, 1),
        ]
        unwatch()


def test_several_trees_spread_over_the_shards_each_in_one_slot(cluster):
    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        owners = set()
        for i in range(12):
            with RedisBackend(client=client, prefix=f"tree{i}") as store:
                store.write("/a/b", i)
                store.write("/c", {"d": i})
                pattern = f"{{tree{i}}}:*"
                keys = [k for node in client.get_primaries()
                        for k in client.scan_iter(match=pattern, target_nodes=node)]  # fmt: skip
                assert len({client.keyslot(k) for k in keys}) == 1
                owners.add(client.get_node_from_key(keys[0]).name)
        assert len(owners) > 1, "every tree landed on the same shard"
        client.ping()  # close() left the client passed in open
    finally:
        client.close()


def test_a_prefix_with_braces_other_than_one_whole_hash_tag_is_refused(cluster):
    with pytest.raises(ValueError, match="hash tag"):
        RedisBackend(cluster.url, "a{b}")
    with RedisBackend(cluster.url, "{tagged}") as store:
        assert store.keyspace == "{tagged}"


def test_a_client_without_decoded_responses_is_refused(cluster):
    client = RedisCluster.from_url(cluster.url)
    try:
        with pytest.raises(ValueError, match="decode_responses=True"):
            RedisBackend(client=client)
    finally:
        client.close()


def primary_of(cluster: RedisClusterServers, key: str) -> tuple[int, int]:
    """(master port, its replica's port) of the shard holding ``key``."""
    probe = redis.Redis(port=cluster.nodes[0].port, decode_responses=True)
    deadline = time.monotonic() + 30
    try:
        slot = probe.cluster("keyslot", key)
        while time.monotonic() < deadline:  # a replica is listed once it has synced
            for start, end, master, *replicas in probe.cluster("slots"):
                if start <= slot <= end and replicas:
                    return int(master[1]), int(replicas[0][1])
            time.sleep(0.05)
    finally:
        probe.close()
    raise AssertionError(f"no shard with a replica serves {key!r}")


def test_the_functions_library_is_on_every_master_and_replica_and_reloaded_once_deleted(cluster):
    def everywhere() -> bool:
        for node in cluster.nodes:
            client = redis.Redis(port=node.port, decode_responses=True)
            try:
                listed = [dict(zip(x[::2], x[1::2], strict=True)) for x in client.function_list()]
            finally:
                client.close()
            if LIBRARY_NAME not in [lib["library_name"] for lib in listed]:
                return False
        return True

    with RedisBackend(cluster.url, name()) as backend:
        backend.write("/n", 1)
        deadline = time.monotonic() + 20
        while not everywhere():  # replicas receive the library asynchronously
            assert time.monotonic() < deadline, "the library did not reach every node"
            time.sleep(0.05)
        backend._client.function_delete(LIBRARY_NAME)  # every master (and replica) forgets it
        assert backend.swap("/n", 2) == 1
        assert backend._library.functions is True
        assert backend.read("/n") == 2


def test_a_failover_of_the_shard_holding_a_tree_loses_no_write_and_no_event(cluster):
    prefix = name()
    with RedisBackend(cluster.url, prefix) as writer, RedisBackend(cluster.url, prefix) as reader:
        got: queue.Queue = queue.Queue()
        unwatch = reader.watch(got.put)
        controller = ControllerSync(writer)
        for _ in range(20):
            controller.update("/n", lambda n: n + 1, default=0)
        old_master, replica = primary_of(cluster, f"{{{prefix}}}:changes")
        promote = redis.Redis(port=replica, decode_responses=True)
        try:
            promote.execute_command("CLUSTER", "FAILOVER")
            deadline = time.monotonic() + 30
            while promote.info("replication")["role"] != "master":
                assert time.monotonic() < deadline, "the replica was not promoted"
                time.sleep(0.05)
        finally:
            promote.close()
        assert replica != old_master
        deadline = time.monotonic() + 30
        while primary_of(cluster, f"{{{prefix}}}:changes")[0] != replica:  # gossip spreads it
            assert time.monotonic() < deadline, "the other nodes never learnt of the promotion"
            time.sleep(0.05)
        for _ in range(20):  # writes resume on the promoted replica
            controller.update("/n", lambda n: n + 1, default=0)
        assert reader.read("/n") == 40
        value = MISSING
        while value != 40:  # every event, in order, nothing twice (bursts may be merged)
            [(path, prev, new)] = got.get(timeout=30)
            assert (path, prev) == ("/n", value if value is not MISSING else MISSING)
            value = new
        unwatch()


def test_an_async_backend_on_a_ready_async_cluster_client_writes_and_notifies(cluster):
    prefix = name()

    async def main():
        client = aredis.RedisCluster.from_url(cluster.url, decode_responses=True)
        with RedisBackend(cluster.url, prefix) as other:
            got: asyncio.Queue = asyncio.Queue()
            store = RedisAsyncBackend(client=client, prefix=prefix)
            assert repr(store).startswith("RedisAsyncBackend('redis-cluster://")
            store.watch(got.put)  # on a blocking cluster twin of the client
            async with store.transaction():
                await store.write("/a", {"b": 1})
            assert other.read("/a/b") == 1
            await asyncio.to_thread(other.write, "/c", 2)
            assert await asyncio.wait_for(got.get(), 5) == [("/c", MISSING, 2)]
            await store.close()
            assert await client.get("nothing") is None  # left open for its owner
        await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_killing_the_master_of_a_tree_promotes_its_replica_and_its_followers_catch_up(cluster):
    # last in this module: it leaves one node dead (the fixture stops the others by pid)
    prefix = name()
    master, _replica = primary_of(cluster, f"{{{prefix}}}:changes")
    url = f"redis://127.0.0.1:{master}/0"  # the hard case: the node the clients started from
    with RedisBackend(url, prefix) as writer, RedisBackend(url, prefix) as reader:
        got: queue.Queue = queue.Queue()
        unwatch = reader.watch(got.put)
        writer.write("/n", 0)
        assert got.get(timeout=30) == [("/n", MISSING, 0)]
        victim = next(node for node in cluster.nodes if node.port == master)
        victim.stop(signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # refused until the replica is promoted (node timeout 2 s + election)
            try:
                writer.write("/n", 1)
                break
            except BackendError:
                assert time.monotonic() < deadline, "no replica took over the killed master"
                time.sleep(0.1)
        writer.write("/n", 2)
        value: object = 0
        while value != 2:  # each event follows the last, or one resync restates what changed
            [change] = got.get(timeout=30)
            path, prev, new = change[:3]
            if len(change) == 4:  # (or the whole tree, when it cannot tell what changed)
                assert change[3] is RESYNCED and prev is MISSING
                value = new["n"] if path == "/" else new
            else:
                assert (path, prev) == ("/n", value)
                value = new
        assert reader.read("/n") == 2
        unwatch()
