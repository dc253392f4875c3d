"""A 3-node NATS JetStream cluster on loopback, for failover tests.

Each node is a real ``nats-server`` (the bundled binary) with its own config file, store directory and
log under the cluster's root. Ports are picked free before the first start (routes must name the
peers' cluster ports) and kept across restarts, so clients holding the URL list find a restarted node
where it was. A node is killed with SIGKILL (no lame duck, no flush: a crash) and restarted from the
same store.

Leaders are read from the monitoring endpoint ``/jsz`` of any running node: ``meta_cluster.leader`` is
the meta (API) leader, ``stream_detail[].cluster.leader`` a stream's leader,
``stream_detail[].consumer_detail[].cluster.leader`` a consumer's. :meth:`NatsCluster.move_leader` hands a
stream's or a consumer's leadership to a chosen node (a leader stepdown with a preferred placement,
nats-server 2.11+), so a test can decide in advance which node's death takes which leaders with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.api
import nats.js.errors

from tradewire_common.cli.embedded_nats import nats_server_binary

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CLUSTER_NAME = "tradewire"

T = TypeVar("T")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (all bound at once, so distinct)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@dataclass
class ClusterNode:
    """One node: its name, ports, files and process."""

    name: str
    root: Path
    port: int
    cluster_port: int
    monitor_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def config_file(self) -> Path:
        return self.root / "nats.conf"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    @property
    def log_path(self) -> Path:
        return self.root / "nats.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def config_text(self, peers: list[ClusterNode]) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{p.cluster_port}" for p in peers if p is not self)
        return f"""# node {self.name} of a {len(peers)}-node JetStream cluster on loopback
server_name: {self.name}
listen: 127.0.0.1:{self.port}
http: 127.0.0.1:{self.monitor_port}
jetstream {{
  store_dir: "{self.store_dir}"
  max_memory_store: 256MB
  max_file_store: 2GB
}}
cluster {{
  name: {CLUSTER_NAME}
  listen: 127.0.0.1:{self.cluster_port}
  routes: [{routes}]
}}
"""

    def launch(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(self.config_file)],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed, no leadership handed over."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        """SIGTERM (clean shutdown), SIGKILL after a timeout."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, Any]:
        """GET a monitoring endpoint: (status, decoded JSON or text)."""
        try:
            with urllib.request.urlopen(self.monitor_url + path, timeout=timeout) as resp:
                body = resp.read()
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), int(exc.code)
        try:
            return status, json.loads(body)
        except json.JSONDecodeError:
            return status, body.decode(errors="replace")

    def healthy(self) -> bool:
        """``/healthz``: the node runs, JetStream is enabled and current with the meta leader."""
        if not self.running:
            return False
        try:
            status, _ = self.get("/healthz", timeout=1.0)
        except OSError:
            return False
        return status == 200


class NatsCluster:
    """Three (or ``size``) clustered JetStream nodes on loopback; see the module docstring."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.size = size
        self.nodes: list[ClusterNode] = []

    @classmethod
    def started_in(cls, root: Path, size: int = 3) -> NatsCluster:
        cluster = cls(root, size)
        cluster.start()
        return cluster

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Write the configs on free ports, start every node, wait until all are healthy.

        A port taken by someone else between picking and binding makes a node exit: then the whole
        cluster is laid out again on new ports (the stores are still empty)."""
        for attempt in range(3):
            self._layout()
            for node in self.nodes:
                node.launch()
            try:
                self.wait_healthy()
                self.wait_placement()
                return
            except _NodeExited:
                self.stop()
                if attempt == 2:
                    raise

    def _layout(self) -> None:
        ports = _free_ports(3 * self.size)
        self.nodes = []
        for i in range(self.size):
            node_root = self.root / f"n{i + 1}"
            node_root.mkdir(parents=True, exist_ok=True)
            client, route, monitor = ports[3 * i: 3 * i + 3]
            self.nodes.append(ClusterNode(f"n{i + 1}", node_root, client, route, monitor))
        for node in self.nodes:
            node.config_file.write_text(node.config_text(self.nodes))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, node: ClusterNode) -> float:
        """SIGKILL ``node``; returns the monotonic time of the kill."""
        node.kill()
        return time.monotonic()

    def restart(self, node: ClusterNode, timeout: float = START_TIMEOUT_S) -> None:
        """Start a stopped or killed node again from its store, on its ports; wait until it is healthy."""
        node.stop()
        node.launch()
        self.wait_healthy([node], timeout)

    def wait_healthy(self, nodes: list[ClusterNode] | None = None, timeout: float = START_TIMEOUT_S) -> None:
        nodes = self.nodes if nodes is None else nodes
        deadline = time.monotonic() + timeout
        while True:
            for node in nodes:
                if node.proc is not None and node.proc.poll() is not None:
                    raise _NodeExited(f"{node.name} exited with {node.proc.returncode}; see {node.log_path}")
            if all(node.healthy() for node in nodes):
                return
            if time.monotonic() >= deadline:
                sick = [n.name for n in nodes if not n.healthy()]
                raise TimeoutError(f"nodes not healthy after {timeout:g}s: {', '.join(sick)}; see {self.root}")
            time.sleep(0.1)

    def wait_placement(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until a stream with a replica on every node can be created (``/healthz`` answers ok
        before the meta leader has heard from every peer: "no suitable peers for placement")."""

        async def probe() -> None:
            nc = await nats.connect(servers=self.urls, allow_reconnect=False)
            try:
                js = nc.jetstream(timeout=5.0)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                config = nats.js.api.StreamConfig(name="CLUSTER_READY_PROBE", subjects=["cluster.ready.probe"],
                                                  storage=nats.js.api.StorageType.MEMORY, num_replicas=self.size)
                while True:
                    try:
                        await js.add_stream(config)
                        break
                    except (nats.js.errors.APIError, nats.errors.TimeoutError) as exc:
                        if loop.time() >= deadline:
                            raise TimeoutError(f"cluster cannot place an R{self.size} stream: {exc}") from exc
                        await asyncio.sleep(0.1)
                await js.delete_stream("CLUSTER_READY_PROBE")
            finally:
                await nc.close()

        # in a thread of its own, so that it works from synchronous and asynchronous callers alike
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, probe()).result()

    # --- addresses ----------------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (the form ``bus.url`` takes)."""
        return ",".join(self.urls)

    def running_nodes(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.running]

    def node(self, name: str) -> ClusterNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    # --- leaders ------------------------------------------------------------------------------
    def _jsz(self, query: str) -> Iterator[dict[str, Any]]:
        """``/jsz?query`` of every running node that answers."""
        for node in self.running_nodes():
            try:
                status, body = node.get(f"/jsz?{query}")
            except OSError:
                continue
            if status == 200 and isinstance(body, dict):
                yield body

    def meta_leader(self) -> ClusterNode | None:
        """The node leading the JetStream meta group (the API), if the running nodes agree on one."""
        for body in self._jsz(""):
            name = (body.get("meta_cluster") or {}).get("leader")
            if name and self._is_running(name):
                return self.node(name)
        return None

    def stream_leader(self, stream: str) -> ClusterNode | None:
        """The node leading ``stream``'s Raft group, as the running nodes report it (None: no leader)."""
        for info in self._stream_infos(stream):
            name = (info.get("cluster") or {}).get("leader")
            if name and self._is_running(name):
                return self.node(name)
        return None

    def stream_replicas(self, stream: str) -> int:
        """How many peers ``stream``'s Raft group has (leader included), as a running node reports it."""
        for info in self._stream_infos(stream):
            cluster = info.get("cluster") or {}
            if cluster.get("leader"):
                return 1 + len(cluster.get("replicas") or [])
        return 0

    def consumer_leader(self, stream: str, consumer: str) -> ClusterNode | None:
        """The node leading a consumer's Raft group (None: no leader among the running nodes)."""
        for info in self._stream_infos(stream, consumers=True):
            for detail in info.get("consumer_detail") or []:
                if detail.get("name") == consumer:
                    name = (detail.get("cluster") or {}).get("leader")
                    if name and self._is_running(name):
                        return self.node(name)
        return None

    def streams(self) -> dict[str, list[str]]:
        """Every stream a running node reports, with its consumers' names."""
        out: dict[str, list[str]] = {}
        for body in self._jsz("accounts=true&streams=true&consumers=true"):
            for account in body.get("account_details") or []:
                for info in account.get("stream_detail") or []:
                    names = [d["name"] for d in info.get("consumer_detail") or []]
                    out.setdefault(info["name"], [])
                    out[info["name"]] = sorted(set(out[info["name"]]) | set(names))
        return out

    def leaders(self) -> dict[str, str | None]:
        """Leader node name of every stream (``S``) and consumer (``S/C``); None where there is none."""
        out: dict[str, str | None] = {}
        for stream, consumers in self.streams().items():
            node = self.stream_leader(stream)
            out[stream] = node.name if node else None
            for consumer in consumers:
                node = self.consumer_leader(stream, consumer)
                out[f"{stream}/{consumer}"] = node.name if node else None
        return out

    async def move_leader(self, to: ClusterNode, stream: str, consumer: str | None = None,
                          timeout: float = 20.0) -> None:
        """Make ``to`` the leader of ``stream`` (or of its ``consumer``), waiting until the nodes say so."""

        def current() -> ClusterNode | None:
            return self.stream_leader(stream) if consumer is None else self.consumer_leader(stream, consumer)

        api = f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}" if consumer is None else \
            f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}"
        nc = await nats.connect(servers=[n.url for n in self.running_nodes()], allow_reconnect=False)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                leader = await asyncio.to_thread(current)
                if leader is to:
                    return
                if loop.time() >= deadline:
                    where = leader.name if leader else "none"
                    raise TimeoutError(f"{stream} {consumer or ''} still led by {where} after {timeout:g}s")
                if leader is not None:  # else an election is under way: wait for its outcome
                    await nc.request(api, json.dumps({"placement": {"preferred": to.name}}).encode(), timeout=5)
                await asyncio.sleep(0.3)
        finally:
            await nc.close()

    async def move_all_leaders(self, to: ClusterNode) -> None:
        """Hand every stream's and every consumer's leadership to ``to``."""
        for stream, consumers in (await asyncio.to_thread(self.streams)).items():
            await self.move_leader(to, stream)
            for consumer in consumers:
                await self.move_leader(to, stream, consumer)

    def _stream_infos(self, stream: str, *, consumers: bool = False) -> Iterator[dict[str, Any]]:
        query = "accounts=true&streams=true" + ("&consumers=true" if consumers else "")
        for body in self._jsz(query):
            for account in body.get("account_details") or []:
                for info in account.get("stream_detail") or []:
                    if info.get("name") == stream:
                        yield info

    def _is_running(self, name: str) -> bool:
        try:
            return self.node(name).running
        except KeyError:
            return False

    def wait_for(self, probe: Callable[[], T | None], timeout: float = START_TIMEOUT_S, what: str = "") -> T:
        """Poll ``probe`` until it returns something other than None."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {what or 'answer'} after {timeout:g}s; see {self.root}")
            time.sleep(0.05)

    def wait_stream_leader(self, stream: str, timeout: float = START_TIMEOUT_S) -> ClusterNode:
        return self.wait_for(lambda: self.stream_leader(stream), timeout, f"leader of {stream}")


class _NodeExited(RuntimeError):
    pass


@contextmanager
def running_cluster(root: Path, size: int = 3) -> Iterator[NatsCluster]:
    cluster = NatsCluster.started_in(root, size)
    try:
        yield cluster
    finally:
        cluster.stop()
