"""vae/server/traffic.py: what one browser connection, and one address, may cost (a clock passed in by hand)."""
from __future__ import annotations

from pathlib import Path

import pytest

from vae.server import limits
from vae.server.traffic import Bucket, Refused, Traffic, address_key


def test_an_address_counts_by_ipv4_address_or_ipv6_network():
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.4") == "198.51.100.4"  # an IPv4 client of a dual-stack socket
    assert address_key(None) == "unknown"


def test_a_bucket_bursts_then_refills_at_its_rate():
    bucket = Bucket(capacity=10, rate=0.5, at=0.0)
    bucket.take(14, now=0.0)
    assert bucket.now_level(0.0) == -4
    assert bucket.wait_s(0.0) == pytest.approx(8.0)  # back to zero at 0.5 a second
    assert bucket.now_level(100.0) == 10  # never above its capacity
    assert bucket.wait_s(0.0, need=1.0, owed=1.0) == pytest.approx(12.0)


def test_ordinary_clicking_never_waits():
    """Runs of 0.5 s, one click every 2 s, for ten minutes: a quarter of a core, within the share."""
    traffic = Traffic()
    connection = traffic.open("198.51.100.1", 0.0)
    for click in range(300):
        now = click * 2.0
        assert connection.may_run(now) and connection.message_wait_s(now) == 0
        connection.message_passed(now)
        connection.run_asked(now)
        connection.run_ended(now + 0.5)


def test_a_flooding_connection_gets_its_share_and_no_more_even_alone():
    """Reruns asked for without end, each interrupting the last: after the burst, a share of the time."""
    traffic = Traffic()
    connection = traffic.open("198.51.100.2", 0.0)
    now, ran = 0.0, 0.0
    while now < 600:
        if not connection.may_run(now):
            now += 0.1
            continue
        connection.run_asked(now)
        connection.run_ended(now + 0.5, restarting=True)
        connection.run_ended(now + 0.5)
        ran += 0.5
        now += 0.5
    expected = limits.LIMITS.script_burst_s + limits.LIMITS.script_share * 600
    assert ran == pytest.approx(expected, abs=1.0)


def test_a_visitor_never_waits_for_a_flooder_and_the_flooder_waits_for_the_visitor():
    traffic = Traffic()
    flooder, visitor = traffic.open("198.51.100.3", 0.0), traffic.open("198.51.100.4", 0.0)
    flooder.run_asked(0.0)
    flooder.run_ended(3.0, restarting=True)  # 3 s of script time, and its run goes on
    assert visitor.may_run(3.0)  # the visitor never waits for it
    visitor.run_asked(3.0)
    flooder.run_ended(3.2)
    assert flooder.credit(3.2) > 0  # within its share, yet:
    assert not flooder.may_run(3.3)  # it has used over the margin more: it waits for the visitor's run
    visitor.run_ended(4.5)
    assert flooder.may_run(4.5)


def test_visitors_who_used_about_as_much_never_wait_for_each_other():
    traffic = Traffic()
    a, b = traffic.open("198.51.100.4", 0.0), traffic.open("198.51.100.5", 0.0)
    a.run_asked(0.0)
    a.run_ended(1.0)
    b.run_asked(1.0)
    assert a.may_run(1.1)  # a has used 1 s more than b: within the margin
    b.run_ended(1.2)
    a.run_asked(1.5)
    a.run_ended(4.0)
    b.run_asked(4.0)
    assert not a.may_run(4.1)  # now 3.3 s more, and b's script runs: a's rerun waits for it
    b.run_ended(4.5)
    assert a.may_run(4.5)


def test_connections_of_one_address_share_its_credit():
    """A new connection from a flooding address starts with the address's low credit, not a fresh one."""
    traffic = Traffic()
    old = traffic.open("198.51.100.6", 0.0)
    old.run_asked(0.0)
    old.run_ended(100.0)  # used 100 s of script time
    new = traffic.open("198.51.100.6", 100.0)
    assert new.credit(100.0) < 0 and not new.may_run(100.0)
    assert new.run_wait_s(100.0) > 0


def test_the_same_address_never_yields_to_itself():
    traffic = Traffic()
    a, b = traffic.open("198.51.100.8", 0.0), traffic.open("198.51.100.8", 0.0)
    b.run_asked(0.0)
    b.run_ended(1.0)
    a.run_asked(1.0)  # b has used 1 s; a's run goes on
    assert b.may_run(1.5)


def test_a_run_in_progress_counts_before_it_ends():
    traffic = Traffic()
    connection = traffic.open("198.51.100.9", 0.0)
    connection.run_asked(0.0)
    assert connection.credit(5.0) == pytest.approx(limits.LIMITS.script_burst_s - 5.0)


def test_an_interrupted_run_restarts_and_is_charged_throughout():
    traffic = Traffic()
    connection = traffic.open("198.51.100.10", 0.0)
    connection.run_asked(0.0)
    connection.run_ended(1.0, restarting=True)  # stopped early for the next rerun, which runs from now
    connection.run_ended(3.0)
    # 3 s charged; the full bucket refills only once the first second was charged, for 2 s.
    burst, share = limits.LIMITS.script_burst_s, limits.LIMITS.script_share
    assert connection.script.now_level(3.0) == pytest.approx(burst - 3.0 + 2.0 * share)


def test_messages_beyond_the_rate_wait():
    traffic = Traffic()
    connection = traffic.open("198.51.100.6", 0.0)
    passed = 0
    while connection.message_wait_s(0.0) == 0:
        connection.message_passed(0.0)
        passed += 1
    assert passed == limits.LIMITS.messages_burst
    assert connection.message_wait_s(0.0) == pytest.approx(1 / limits.LIMITS.messages_per_s)


def test_an_address_may_open_only_so_many_connections_and_only_so_fast():
    traffic = Traffic()
    opened = [traffic.open("198.51.100.7", 0.0) for _ in range(limits.LIMITS.connections_per_address)]
    with pytest.raises(Refused, match="open"):
        traffic.open("198.51.100.7", 0.0)
    traffic.open("198.51.100.8", 0.0)  # another address is not affected
    opened.pop().close(1.0)
    with pytest.raises(Refused, match="too fast"):  # one closed, but the burst of new ones is spent
        traffic.open("198.51.100.7", 1.0)
    traffic.open("198.51.100.7", 1.0 + 1 / limits.LIMITS.new_connections_per_s)
    assert traffic.open_connections("198.51.100.7") == limits.LIMITS.connections_per_address


def test_an_address_with_nothing_open_is_forgotten_once_it_has_refilled():
    traffic = Traffic()
    connection = traffic.open("198.51.100.11", 0.0)
    connection.close(0.0)
    traffic.forget_idle(1.0)
    assert "198.51.100.11" in traffic._addresses  # its new-connection bucket is not full yet
    traffic.forget_idle(1e6)
    assert not traffic._addresses


def test_each_connection_from_this_machine_counts_apart():
    """127.0.0.1 is whoever runs the server (or a local proxy, which passes the client's address on)."""
    traffic = Traffic()
    opened = [traffic.open("127.0.0.1", 0.0) for _ in range(limits.LIMITS.connections_per_address + 5)]
    assert len({c.address.key for c in opened}) == len(opened)
    assert traffic.open("127.0.0.2", 0.0).address.key == "127.0.0.2"  # the rest of 127/8 counts as usual


def test_streamlits_config_holds_the_message_limits():
    """The websocket's sizes are Streamlit's own settings: .streamlit/config.toml must say what LIMITS says."""
    import tomllib  # as Streamlit reads it

    server = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())["server"]
    assert server["maxMessageSize"] == limits.LIMITS.message_mb
    assert server["maxWidgetStateSize"] == limits.LIMITS.widget_state_mb


def test_the_guard_drops_widget_values_no_widget_of_the_session_takes():
    """studio/guard.drop_unexpected: a value of another kind than its widget's, or for a widget never drawn."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    from studio.guard import drop_unexpected

    msg = BackMsg()
    widgets = msg.rerun_script.widget_states.widgets
    widgets.add(id="pick", string_value="vae-z2.pt")
    widgets.add(id="pick-forged", int_value=999)
    widgets.add(id="digits").string_array_value.data.extend(["1", "7"])
    widgets.add(id="never-drawn", string_value="x")
    widgets.add(id="cleared")  # no value at all: a cleared widget, left for Streamlit (its default)
    widgets.add(id="epochs", int_value=3)  # a number input sends whole numbers as int_value
    widgets.add(id="canvas", json_value='{"raw": null}')
    widgets.add(id="canvas-forged", json_value="[999")
    kinds = {"pick": "string_value", "pick-forged": "string_value", "digits": "string_array_value",
             "epochs": "double_value", "canvas": "json_value", "canvas-forged": "json_value"}
    assert [w.id for w in drop_unexpected(msg, kinds)] == ["pick-forged", "never-drawn", "canvas-forged"]
    assert [w.id for w in widgets] == ["pick", "digits", "cleared", "epochs", "canvas"]
    assert drop_unexpected(msg, None) == []  # unknown (another Streamlit): nothing removed
    assert len(drop_unexpected(msg, {})) == 4  # nothing drawn yet: every value goes


def test_a_flood_defers_to_another_visitor_from_its_first_second():
    """Reruns that restart the flooder's own run yield at the small margin, long before its burst is spent."""
    traffic = Traffic()
    flooder, visitor = traffic.open("198.51.100.12", 0.0), traffic.open("198.51.100.13", 0.0)
    flooder.run_asked(0.0)
    flooder.run_ended(0.4, restarting=True)  # 0.4 s in, its run restarted by its next rerun
    visitor.run_asked(0.4)
    flooder.run_ended(0.8, restarting=True)
    assert flooder.credit(0.8) > limits.LIMITS.script_burst_s - 1  # most of its burst is left, yet:
    assert not flooder.may_run(0.8)  # its next restart waits for the visitor's run
    visitor.run_ended(1.5)
    assert flooder.may_run(1.5)


def test_quick_clicking_never_waits_alone_or_beside_another_quick_clicker():
    """Bursts of five clicks 0.2 s apart, each restarting the last one's 0.5-s run, a burst every 6 s, for ten
    minutes (a quarter of a core): no click ever waits, alone, or while another visitor does the same, their
    bursts overlapping. (A click that restarts its own run waits only for a visitor who has used 0.5 s less.)"""
    for others in (0, 1):
        traffic = Traffic()
        clickers = [traffic.open(f"198.51.100.{20 + i}", 0.0) for i in range(1 + others)]
        events = sorted((burst * 6.0 + click * 0.2 + offset, i) for i, offset in enumerate((0.0, 0.3)[:len(clickers)])
                        for burst in range(100) for click in range(5))
        ends: dict[int, float] = {}
        for now, i in events:
            for j, end in list(ends.items()):  # runs that ended before this click
                if end <= now:
                    clickers[j].run_ended(end)
                    del ends[j]
            connection = clickers[i]
            assert connection.may_run(now) and connection.message_wait_s(now) == 0, (others, now)
            connection.message_passed(now)
            if i in ends:
                connection.run_ended(now, restarting=True)
            connection.run_asked(now)
            ends[i] = now + 0.5


def test_the_guard_reads_the_session_a_reconnecting_browser_asks_for():
    from studio.guard import claimed_session

    def scope(header):
        return {"headers": [(b"host", b"x"), (b"sec-websocket-protocol", header)]}

    assert claimed_session(scope(b"streamlit, xsrf-token, 5f0c-session")) == "5f0c-session"
    assert claimed_session(scope(b"streamlit, xsrf-token")) is None  # a first visit
    assert claimed_session(scope(b"streamlit, , ")) is None
    assert claimed_session({"headers": []}) is None
