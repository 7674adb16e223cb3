#!/bin/sh
# accel-entrypoint: the image's ENTRYPOINT.
#
#   IMAGE                          -> accel launch /opt/accel/example/train.py --output_dir /output
#   IMAGE script.py [args]         -> accel launch script.py [args]
#   IMAGE --num_processes 4 s.py   -> accel launch --num_processes 4 s.py   (launcher options first)
#   IMAGE --verify                 -> accel env --verify (is the venv still the one the image was built with?)
#   IMAGE anything else            -> run as given (accel env, python, bash, pytest, ...)
#
# Before a launch it checks the container set-up and warns: a small /dev/shm (Docker's default is
# 64 MB; gloo/NCCL and DataLoader workers need more: --shm-size / compose shm_size), no init
# process as PID 1 (--init / compose init: true), and an output folder this user cannot write.
# Then it execs the launcher, so signals reach it directly and its exit code is the container's.
#
# Any uid works (compose: ACCEL_UID, docker run --user): a user without a home of its own (Docker
# then sets HOME=/) gets a private one under /tmp, for the caches of pip, torch and the like.
#
# Started as root with ACCEL_UID set (what compose does), it first hands the output folder to
# ACCEL_UID:ACCEL_GID when the folder is someone else's (Docker makes a missing bind-mount source
# as root), then drops to that user with setpriv (no capabilities, no supplementary groups) and
# carries on as it: the job never runs as root.
set -eu

warn() { printf 'accel-entrypoint: warning: %s\n' "$*" >&2; }

min_shm_mb=${ACCEL_MIN_SHM_MB:-512}

drop_root() {
	uid=$ACCEL_UID
	gid=${ACCEL_GID:-$ACCEL_UID}
	out=${ACCEL_OUTPUT_DIR:-/output}
	if [ -d "$out" ] && [ "$(stat -c %u:%g "$out")" != "$uid:$gid" ]; then
		chown "$uid:$gid" "$out" 2>/dev/null || warn "could not hand $out to $uid:$gid (a read-only or root-squashed mount?)"
	fi
	home=$(getent passwd "$uid" | cut -d: -f6) || home=
	HOME=${home:-/}
	export HOME
	if ! command -v setpriv >/dev/null 2>&1; then
		printf 'accel-entrypoint: error: ACCEL_UID=%s asks to drop root, but this image has no setpriv (util-linux);' "$uid" >&2
		printf ' run with --user %s:%s instead, or install setpriv in the image.\n' "$uid" "$gid" >&2
		exit 2
	fi
	exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$0" "$@"
}

if [ "$(id -u)" = 0 ] && [ -n "${ACCEL_UID:-}" ] && [ "$ACCEL_UID" != 0 ]; then
	drop_root "$@"
fi

check_runtime() {
	shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $2 }') || shm_kb=
	if [ -n "$shm_kb" ] && [ "$shm_kb" -lt $((min_shm_mb * 1024)) ]; then
		warn "/dev/shm is $((shm_kb / 1024)) MB (< ${min_shm_mb} MB); collectives and DataLoader workers" \
			"may fail with 'No space left on device' or 'Bus error'. Use --shm-size=2g (compose: shm_size: 2gb) or --ipc=host."
	fi
	if [ "$$" = 1 ]; then
		warn "the launcher is PID 1 with no init process; run with --init (compose: init: true)" \
			"so that exited processes are reaped and stop signals are forwarded."
	fi
	out=${ACCEL_OUTPUT_DIR:-/output}
	if [ -d "$out" ] && [ ! -w "$out" ]; then
		warn "$out (owner uid $(stat -c %u "$out")) is not writable by uid $(id -u); with docker run, pass" \
			"--user with the uid that owns the host folder, or run as root with -e ACCEL_UID=<uid> so that" \
			"the entrypoint hands the folder to that uid and runs the job as it (what compose does)."
	fi
}

if [ -z "${HOME:-}" ] || [ ! -w "$HOME" ]; then
	HOME=/tmp/accel-home-$(id -u)
	mkdir -p -m 0700 "$HOME"
	export HOME
fi

case "${1:-}" in
--verify)
	set -- accel env --verify
	;;
-* | *.py)
	set -- accel launch "$@"
	;;
esac

case "${1:-} ${2:-}" in
"accel launch" | "torchrun "*)
	check_runtime
	;;
esac

exec "$@"
