"""accel launch: run a training script on N processes, here or across machines.

usage: accel launch [options] script.py [script args...]
       accel launch [options] -m package.module [module args...]

Options stop at the script: everything after it belongs to the script, untouched (``--`` before
the script also ends the options). Every option accepts underscores or dashes, and Accelerate's
and torchrun's spellings both work:

  --num_processes N       processes per machine        (torchrun: --nproc-per-node)
  --num_machines N        machines taking part         (torchrun: --nnodes)
  --machine_rank I        index of this machine        (torchrun: --node-rank)
  --main_process_ip A     address of machine 0         (torchrun: --master-addr)
  --main_process_port P   rendezvous port; 0 = free    (torchrun: --master-port)
  --rdzv_endpoint A:P     both of the above            (torchrun: --rdzv-endpoint)
  --rdzv_backend B        c10d (default) or static;  --rdzv_id ID;  --rdzv_timeout SECONDS
  --standalone            one machine, free port
  --cpu | --gpu           run CPU ranks (gloo) | require GPUs (--multi_gpu is accepted too)
  --mixed_precision M     no | bf16 | fp16
  --gradient_accumulation_steps K
  --strategy S            ddp | fsdp (--use_fsdp is accepted too)
  --max_restarts N        restart the whole worker group up to N times after a failure
  --monitor_interval S    seconds between worker health checks
  --shutdown_timeout S    seconds between SIGTERM and SIGKILL when stopping ranks
  --auto_resume | --no_auto_resume   load the latest checkpoint after a restart (default on)
  --project_dir DIR       default directory for checkpoints and trackers
  --num_cpu_threads_per_process N    OMP_NUM_THREADS for each rank (default 1 with several ranks)
  --config_file PATH      config file (see `accel config --help`)
  --debug                 collectives check shapes across ranks first (ACCEL_DEBUG_MODE=1 for the ranks)
  --gpu_ids 0,1           GPUs the ranks may use (CUDA_VISIBLE_DEVICES)
  --enable_cpu_affinity   bind each GPU rank to the CPUs of its NUMA node
  --env NAME=VALUE        a variable for every rank (repeatable)
  --tee S | --redirects S torch elastic's stream specs: 0 none, 1 stdout, 2 stderr, 3 both, or 0:3,1:1
  --log_dir DIR           keep each rank's stdout/stderr in files under DIR
  --local_ranks_filter 0,1           only these local ranks reach the console
  --log_line_prefix_template T       line prefix, e.g. "[${rank}]:" (default with >1 process:
                          "[${role_name}${rank}]:", so every line says its rank and lines never mix)
  --role NAME             the worker role in torch elastic (default "default")
  --start_method M        spawn | fork | forkserver;  --rdzv_conf k=v,...: rendezvous options
  --same_network, --main_training_function F, --gradient_clipping X
                          accepted for Accelerate scripts; no effect here (the launch line says why)
  -m, --module            the target is a module, as in `python -m`
  -q, --quiet             do not print the launch line
  -v, --verbose           also show torch elastic's own log lines

Settings resolve as: flag > environment (ACCEL_<KEY>, torchrun's PET_*, a Kubeflow pod's
RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT) > config file > built-in default. One line on stderr
says which config file was used ("none: built-in defaults") and what will run.

Without a process count on a machine without GPUs one process runs, and the launch line says so.
``--num_processes N`` on a CPU machine runs N real gloo ranks. The launched world size always
equals the requested one: impossible requests (GPUs on a machine without them, more processes than
GPUs) fail before anything starts. Workers see ACCEL_MIXED_PRECISION, ACCEL_GRADIENT_ACCUMULATION_STEPS,
ACCEL_USE_CPU, ACCEL_STRATEGY, ACCEL_REQUESTED_WORLD_SIZE, ACCEL_CONFIG_SOURCE, ACCEL_AUTO_RESUME,
ACCEL_PROJECT_DIR (when set) and torch's RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.

Across machines the rendezvous is c10d at main_process_ip:main_process_port, hosted by machine 0
(node ranks follow join order; use --rdzv_backend static to pin them to --machine_rank).
When a rank fails, the first failure is reported first with its rank, host, exit code and
traceback, the other ranks are stopped, and the exit code is the failing rank's. SIGINT, SIGTERM,
SIGHUP, SIGQUIT and SIGUSR1 are forwarded to every rank (a rank may save a checkpoint on SIGTERM or
SIGUSR1); ranks still running after --shutdown_timeout seconds are killed; the launcher exits with
128 + the signal number and leaves no process behind.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

from accel import env
from accel.config import resolve
from accel.exceptions import ConfigError
from accel.launch import extras
from accel.launch.arguments import LaunchRequest, parse_args
from accel.launch.plan import announcement, plan

__all__ = ["main", "run"]


def _check_target(request: LaunchRequest) -> None:
    if request.module:
        try:
            found = importlib.util.find_spec(request.target) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(f"module {request.target!r} not found; check the name and PYTHONPATH")
        return
    path = Path(request.target)
    if path.is_dir():
        raise ConfigError(
            f"{request.target!r} is a directory, not a script; pass the .py file, or -m package to run its __main__"
        )
    if not path.is_file():
        raise ConfigError(f"script {request.target!r} not found (working directory: {Path.cwd()})")


def run(request: LaunchRequest) -> int:
    """Launch the request's script or module; return 0 when every rank succeeded.

    Raises:
        ConfigError: bad settings; LaunchError: impossible request or failed ranks.
    """
    _check_target(request)
    resolved = resolve(request.flags, config_file=request.config_file)
    quiet_cpp = not request.verbose and env.get(env.TORCH_CPP_LOG_LEVEL) is None
    if quiet_cpp:  # the launcher's own C++ retry logs; workers keep torch's default
        env.update({env.TORCH_CPP_LOG_LEVEL: "FATAL"})
    import torch

    gpus = extras.visible_gpu_count(resolved, torch.cuda.device_count())
    p = plan(resolved, gpu_count=gpus, omp_threads=request.omp_threads, verbose=request.verbose)
    p = extras.apply(resolved, p, request.launch, request.env)
    if not request.quiet:
        sys.stderr.write(announcement(resolved, p, request.target) + "\n")
        sys.stderr.flush()
    from accel.launch.elastic import execute

    if quiet_cpp:  # None: removed again for the workers
        p = dataclasses.replace(p, exports={**p.exports, env.TORCH_CPP_LOG_LEVEL: None})
    worker = ["-u", "-m", "accel.launch.worker", *(["-m"] if request.module else []), request.target]
    execute(p, sys.executable, [*worker, *request.script_args], start_method=p.start_method)
    return 0


def main(argv: list[str]) -> int:
    """``accel launch ARGV``: parse, resolve, plan, launch."""
    request = parse_args(argv)
    if request.help:
        sys.stdout.write(__doc__ or "")
        return 0
    return run(request)
