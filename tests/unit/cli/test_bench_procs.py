from __future__ import annotations

import os
from pathlib import Path

from cli.bench.procs import MB, ProcessSampler, cpu_ticks, vm_rss_bytes

STATUS = """Name:\tpython
State:\tS (sleeping)
VmPeak:\t  912340 kB
VmRSS:\t  123456 kB
Threads:\t7
"""
# A command name with a space and a parenthesis: fields count from the last ')'.
STAT = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 7 0 9 0"


def test_resident_memory_is_read_from_the_vmrss_line_in_bytes():
    assert vm_rss_bytes(STATUS) == 123456 * 1024


def test_a_status_without_a_readable_vmrss_line_has_no_resident_memory():
    assert vm_rss_bytes("Name:\tkthreadd\nState:\tS\n") is None
    assert vm_rss_bytes("VmRSS:\t  12 MB\n") is None


def test_cpu_time_is_user_plus_system_ticks_counted_after_the_command_name():
    assert cpu_ticks(STAT) == 250 + 31


def test_a_truncated_stat_line_has_no_cpu_time():
    assert cpu_ticks("4242 (python) S 1 2 3") is None
    assert cpu_ticks("garbage") is None


def test_the_sampler_reports_this_process_with_its_memory_and_cpu():
    sampler = ProcessSampler({"me": os.getpid()})
    sampler.sample()
    _ = sum(i * i for i in range(200_000))  # some CPU between the samples
    sampler.sample()
    [figure] = sampler.figures()
    assert figure.service == "me"
    assert figure.samples == 2
    assert 1 < figure.start_mb <= figure.peak_mb
    assert figure.cpu_s >= 0


def test_a_process_without_proc_files_has_no_figure(tmp_path: Path):
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "status").write_text(STATUS)
    (tmp_path / "7" / "stat").write_text(STAT)
    sampler = ProcessSampler({"alive": 7, "gone": 8}, proc=tmp_path)
    sampler.sample()
    [figure] = sampler.figures()
    assert (figure.service, figure.peak_mb) == ("alive", 123456 * 1024 / MB)
    assert figure.cpu_s == 0
