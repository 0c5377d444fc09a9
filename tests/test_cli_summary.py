"""``nlseg summary`` end to end, through the installed entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def nlseg(*args: str) -> subprocess.CompletedProcess:
    code = "from nlseg.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args,params,macs",
    [
        (["--dataset", "cifar10"], 0.50e6, 159.6e6),
        (["--dataset", "cifar10", "--nonlocal", "diffusion"], 0.56e6, 192.9e6),
        (["--dataset", "stl10", "--nonlocal", "diffusion", "--pool", "0"], 0.55e6, 9341.2e6),
        (["--dataset", "cifar10", "--model", "resnet44"], 0.66e6, 98.3e6),
    ],
)
def test_summary_json_matches_the_thesis(args, params, macs):
    result = nlseg("summary", *args, "--json")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) == {"params", "macs", "macs_executed"}
    assert abs(last["params"] - params) / params <= 0.025
    assert abs(last["macs"] - macs) / macs <= 0.03
    assert "NonlocalBlock" in result.stdout or "--nonlocal" not in args


def test_summary_table_and_flags():
    result = nlseg("summary", "--dataset", "bdd100k", "--model", "midpoint", "--nonlocal", "invfrac", "--s", "0.25",
                   "--stages", "4", "--blocks", "2-2-2", "--channels", "16-32-48", "--h", "0.05", "--size", "45x80")
    assert result.returncode == 0, result.stderr
    assert "total" in result.stdout and "19x45x80" in result.stdout


@pytest.mark.parametrize(
    "args,flag",
    [
        (["--blocks", "6-x-6"], "--blocks"),
        (["--channels", "32-64"], "--blocks"),
        (["--nonlocal", "cosine"], "--nonlocal"),
        (["--model", "vgg"], "--model"),
        (["--dataset", "imagenet"], "--dataset"),
        (["--model", "resnet44", "--nonlocal", "frac"], "--nonlocal"),
        (["--nonlocal", "frac", "--s", "1.5"], "--s"),
        (["--pool", "-1"], "--pool"),
        (["--size", "64x64"], "--size"),
        (["--input-size", "64x64"], "--size"),  # the former name is still accepted
        (["--channels", "31-64-112"], "--channels"),
    ],
)
def test_bad_flags_give_one_line(args, flag):
    result = nlseg("summary", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in result.stderr
