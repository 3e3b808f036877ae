"""What one visitor's browser connection may cost the server: the bookkeeping, no networking here.

The websocket guard (studio/guard.py) asks this module before it hands a message from a browser to
Streamlit, and tells it when a script run starts and ends. Three things are limited, each per connection
and per client address (one person may open many connections, or tabs):

- open connections per address, and how fast an address may open new ones (each one runs the script);
- messages per second (token buckets: a burst, then a steady rate); the guard waits instead of reading
  on, so a flooding client is slowed by TCP itself and nothing piles up in the server's memory;
- script time: the seconds a connection's script runs are taken from a bucket that refills at a share of
  one core (`script_share`); what is left is its credit. When another address's script is running and has
  more credit (by a margin), a rerun waits until that run has ended. So whoever has used less lately goes first: an
  ordinary visitor's clicks never wait for a client that asks for reruns without end, and that client
  runs only while nobody else's script does. Alone, anyone runs as often as they ask.

Addresses: an IPv6 client counts by its /64 network (one home or one machine holds a whole /64). The
machine's own browser (127.0.0.1, ::1) counts each connection apart: that is whoever runs the server, or a
reverse proxy on the same machine, which must pass the client's address in X-Forwarded-For (uvicorn takes
it from there for connections from 127.0.0.1).
"""
from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field

from . import limits

THIS_MACHINE = frozenset({"127.0.0.1", "::1"})


def address_key(host: str | None) -> str:
    """The unit an address limit counts: the IPv4 address, or the /64 network of an IPv6 one."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a unix socket's path, or a proxy's odd value: counted as it is
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d, an IPv4 client of a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Bucket:
    """A token bucket: holds at most `capacity`, refills at `rate` per second, may go below zero."""

    capacity: float
    rate: float
    level: float = None  # type: ignore[assignment]
    at: float = 0.0

    def __post_init__(self):
        if self.level is None:
            self.level = self.capacity

    def now_level(self, now: float) -> float:
        return min(self.capacity, self.level + (now - self.at) * self.rate)

    def take(self, amount: float, now: float) -> None:
        self.level, self.at = self.now_level(now) - amount, now

    def wait_s(self, now: float, need: float = 0.0, owed: float = 0.0) -> float:
        """Seconds until the level, less `owed`, reaches `need` (0 if it has)."""
        short = need + owed - self.now_level(now)
        return max(0.0, short / self.rate) if short > 0 else 0.0


@dataclass
class _Address:
    key: str
    messages: Bucket
    script: Bucket
    new_connections: Bucket
    connections: set = field(default_factory=set)

    def running_s(self, now: float) -> float:
        """Seconds its runs in progress have lasted so far, all together."""
        return sum(c.running_s(now) for c in self.connections)


class Refused(Exception):
    """A connection the address may not open now; the text is for the server's log."""


class Connection:
    """One browser connection (websocket) as the guard sees it."""

    def __init__(self, traffic: Traffic, address: _Address, now: float):
        self._traffic, self.address = traffic, address
        self.messages = Bucket(limits.LIMITS.messages_burst, limits.LIMITS.messages_per_s, at=now)
        self.script = Bucket(limits.LIMITS.script_burst_s, limits.LIMITS.script_share, at=now)
        self.run_started: float | None = None

    # --- messages ------------------------------------------------------------------------------------
    def message_wait_s(self, now: float) -> float:
        """Seconds to wait before the next message may be handed on."""
        return max(self.messages.wait_s(now, 1.0), self.address.messages.wait_s(now, 1.0))

    def message_passed(self, now: float) -> None:
        self.messages.take(1.0, now)
        self.address.messages.take(1.0, now)

    # --- script runs ---------------------------------------------------------------------------------
    def running_s(self, now: float) -> float:
        return 0.0 if self.run_started is None else now - self.run_started

    def credit(self, now: float, counting_runs: bool = True) -> float:
        """Script time it may still use before it has used more than its share lately: its bucket's level, or
        its address's if lower, less what the runs in progress have used so far (negative: over its share).
        `counting_runs=False`: as it stood when its runs in progress began."""
        own, address = (self.running_s(now), self.address.running_s(now)) if counting_runs else (0.0, 0.0)
        return min(self.script.now_level(now) - own, self.address.script.now_level(now) - address)

    def run_wait_s(self, now: float) -> float:
        """Seconds until its credit is back to zero (0 if it is not below), if no run of its address goes on."""
        short = -self.credit(now)
        return 0.0 if short <= 0 else short / min(self.script.rate, self.address.script.rate)

    def may_run(self, now: float) -> bool:
        """Whether a rerun may start now: not while its credit is below zero (over its share: it gets that
        share and no more, even alone), nor while the script of another address runs whose credit, as it
        stood when that run began, is higher by over `yield_margin_s`. So whoever has used less lately goes
        first: a visitor's runs never wait for a client that asks for reruns without end, and that client,
        once it has used `yield_margin_s` more than them, waits for each of their runs to end. A rerun that would
        restart its own run in progress (a flood's every one; a quick click now and then) yields at the smaller
        `restart_margin_s`: a flood defers to the others from its first second, not after its burst."""
        if self.run_wait_s(now) > 0:
            return False
        margin = limits.LIMITS.restart_margin_s if self.run_started is not None else limits.LIMITS.yield_margin_s
        mine = self.credit(now) + margin
        return not any(other.credit(now, counting_runs=False) > mine for other in self._traffic.running(now)
                       if other.address is not self.address)

    def run_asked(self, now: float) -> None:
        """A rerun was handed on: the script runs from now (a run in progress restarts, still running)."""
        if self.run_started is None:
            self.run_started = now

    def run_ended(self, now: float, restarting: bool = False) -> None:
        """The script run ended (`restarting`: stopped early for a rerun that goes on running now)."""
        if self.run_started is None:
            return  # a run the script asked for itself (st.rerun): not charged
        spent = now - self.run_started
        self.script.take(spent, now)
        self.address.script.take(spent, now)
        self.run_started = now if restarting else None

    def close(self, now: float) -> None:
        self.run_ended(now)
        self._traffic._closed(self)


class Traffic:
    """Every open connection, by client address. Not thread-safe: the guard uses it from the event loop."""

    def __init__(self):
        self._addresses: dict[str, _Address] = {}
        self._local = itertools.count(1)

    def open(self, host: str | None, now: float) -> Connection:
        """A new connection from `host`; Refused when its address has too many or opens them too fast."""
        key = f"this machine #{next(self._local)}" if host in THIS_MACHINE else address_key(host)
        address = self._addresses.get(key)
        if address is None:
            address = self._addresses[key] = _Address(
                key, Bucket(limits.LIMITS.address_messages_burst, limits.LIMITS.address_messages_per_s, at=now),
                Bucket(limits.LIMITS.address_script_burst_s, limits.LIMITS.address_script_share, at=now),
                Bucket(limits.LIMITS.new_connections_burst, limits.LIMITS.new_connections_per_s, at=now))
        if len(address.connections) >= limits.LIMITS.connections_per_address:
            raise Refused(f"{key} has {len(address.connections)} connections open, the limit")
        if address.new_connections.wait_s(now, 1.0) > 0:
            raise Refused(f"{key} opens connections too fast")
        address.new_connections.take(1.0, now)
        connection = Connection(self, address, now)
        address.connections.add(connection)
        return connection

    def running(self, now: float) -> list[Connection]:
        """The connections whose script is running now."""
        return [c for a in self._addresses.values() for c in a.connections if c.run_started is not None]

    def _closed(self, connection: Connection) -> None:
        connection.address.connections.discard(connection)

    def forget_idle(self, now: float) -> None:
        """Drop the records of addresses with no connection whose buckets are full again (bounded memory):
        nothing they did still counts."""
        for key, a in list(self._addresses.items()):
            if not a.connections and all(b.now_level(now) >= b.capacity for b in (a.messages, a.script, a.new_connections)):
                del self._addresses[key]

    def open_connections(self, host: str | None) -> int:
        address = self._addresses.get(address_key(host))
        return 0 if address is None else len(address.connections)
