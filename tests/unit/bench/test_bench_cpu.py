"""``make bench`` counts the CPU of the process trees it started, and only theirs."""

from __future__ import annotations

from bench.cpu import Proc, attribute, parse_machine, parse_stat, spent, tree_seconds

#: A real line of /proc/<pid>/stat (a PostgreSQL backend), utime 250, stime 50,
#: cutime 100, cstime 20 ticks, with a command name holding a space and parentheses.
STAT = (
    "4242 (postgres: a (b)) S 4200 4242 4242 0 -1 4194560 1093 0 0 0 250 50 100 20 20 0 1 0 "
    "1234567 230809600 3371 18446744073709551615 1 1 0 0 0 0 0 4096 536887815 0 0 0 17 1 0 0"
)


def machine(*procs: tuple[int, int, float]) -> list[Proc]:
    return [Proc(pid=pid, ppid=ppid, seconds=seconds) for pid, ppid, seconds in procs]


def test_a_stat_line_gives_the_parent_and_the_cpu_of_the_process_and_its_exited_children():
    # Given a stat line whose command name holds a space and parentheses
    # When it is read at 100 ticks a second
    proc = parse_stat(4242, STAT, ticks=100)

    # Then its own and its waited-for children's user and system time are counted
    assert proc == Proc(pid=4242, ppid=4200, seconds=4.2)


def test_a_tree_counts_the_root_and_every_descendant_but_nothing_beside_it():
    # Given a postmaster with a backend that has a child, and another server's processes
    procs = machine((1, 0, 9.0), (100, 1, 1.0), (101, 100, 2.0), (102, 101, 0.5),
                    (200, 1, 7.0), (201, 200, 3.0))  # fmt: skip

    # When the postmaster's tree is counted
    # Then its backend and the backend's child count, the other server does not
    assert tree_seconds(procs, 100) == 3.5


def test_a_role_whose_root_is_gone_counts_nothing():
    assert tree_seconds(machine((1, 0, 9.0), (5, 1, 1.0)), 77) == 0.0


def test_each_role_counts_its_own_tree():
    # Given the bench's API, its PostgreSQL with two backends, and an unrelated redis-server
    procs = machine((1, 0, 0.0), (10, 1, 1.5), (20, 1, 4.0), (21, 20, 0.25), (22, 20, 0.25),
                    (30, 1, 8.0))  # fmt: skip

    # When the CPU is attributed to the bench's roles
    totals = attribute(procs, {"api": 10, "postgresql": 20})

    # Then each role has its tree, and the other server is nowhere
    assert totals == {"api": 1.5, "postgresql": 4.5}


def test_a_backend_that_exits_between_two_snapshots_keeps_its_cpu_in_the_postmaster():
    # Given a backend that has used 2 s, under a postmaster that has used 1 s
    before = attribute(machine((20, 1, 1.0), (21, 20, 2.0)), {"postgresql": 20})

    # When the backend uses 0.5 s more and exits, and the postmaster reaps it
    after = attribute(machine((20, 1, 1.0 + 2.5)), {"postgresql": 20})

    # Then the 0.5 s is counted, not lost with the backend
    assert spent(before, after) == {"postgresql": 0.5}


def test_the_machines_busy_time_leaves_idle_and_io_wait_out():
    # Given /proc/stat's first line: user 100, nice 10, system 50, idle 800, iowait 30,
    # irq 5, softirq 3, steal 2 ticks (guest time is already inside user)
    proc_stat = "cpu  100 10 50 800 30 5 3 2 0 0\ncpu0 50 5 25 400 15 2 1 1 0 0\n"

    # Then the machine was busy 170 ticks
    assert parse_machine(proc_stat, ticks=100) == 1.7
