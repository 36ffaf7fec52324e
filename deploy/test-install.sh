#!/usr/bin/env bash
# The README's systemd install, tested where there is no systemd (CI, containers):
#  1. runs the commands of README.md's install block (the ```sh block after the
#     `<!-- deploy-test: install -->` marker) from the repository's root, as root, with `sudo `
#     dropped and `target/release/loa` replaced by the binary under test;
#  2. edits /etc/loa/loa.env as the operator would (a free port, JSON logs);
#  3. starts ExecStart= of deploy/loa.service as systemd would: its User=/Group= with no
#     capabilities and no new privileges, in its WorkingDirectory=, with only its Environment=
#     overridden by its EnvironmentFile= (read from the unit, so the two cannot drift apart), its
#     UMask=, and the StateDirectory= systemd would create (owned by the user, 0700);
#  4. expects /healthz to answer 200, the SQLite database in the state directory owned by loa,
#     every log line to be JSON, and a clean exit within TimeoutStopSec= of SIGTERM;
#  5. removes everything it installed (user, /etc/loa, /var/lib/loa, /usr/local/bin/loa, the
#     unit file).
# Not emulated: the unit's sandboxing (ProtectSystem=, SystemCallFilter=, …), which only systemd
# applies; `systemd-analyze verify` and `security` lint it in .ci/run.
#
# Usage (root): deploy/test-install.sh [LOA_BINARY]
#   default binary: $CARGO_TARGET_DIR/debug/loa, else target/debug/loa.
# Refuses to run if a Loa it did not install is there (user loa or any of those paths);
# re-runnable: an interrupted run's leftovers are removed first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "test-install: run as root (it installs a system user and files under /etc, /var, /usr)" >&2
  exit 1
fi
bin=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/loa}")
[ -x "$bin" ] || { echo "test-install: no loa binary at $bin (cargo build first)" >&2; exit 1; }

unit=deploy/loa.service
paths=(/usr/local/bin/loa /etc/loa /var/lib/loa /etc/systemd/system/loa.service)
# Written before anything is installed, removed after everything is: its presence means the
# paths and the user are this script's to remove.
owned=/var/tmp/loa-test-install.owned
made_dirs=/var/tmp/loa-test-install.dirs
pid_file=/var/tmp/loa-test-install.pid
work=$(mktemp -d /tmp/loa-test-install.XXXXXX)
loa_pid=""

say() { printf 'test-install: %s\n' "$*"; }
fail() {
  printf 'test-install: FAILED: %s\n' "$*" >&2
  if [ -s "$work/loa.log" ]; then
    echo "--- loa's log ---" >&2
    tail -n 40 "$work/loa.log" >&2
  fi
  exit 1
}

uninstall() {
  # The loa an interrupted run started (userdel refuses a user with processes).
  if [ -f "$pid_file" ]; then
    old=$(cat "$pid_file")
    if [ "$(readlink "/proc/$old/exe" 2>/dev/null)" = /usr/local/bin/loa ]; then
      kill -KILL "$old" 2>/dev/null || true
      sleep 0.2
    fi
    rm -f "$pid_file"
  fi
  rm -rf "${paths[@]}"
  # A machine without systemd has no unit directory: the README's `install` into it needs one.
  if [ -f "$made_dirs" ]; then
    tac "$made_dirs" | while read -r dir; do rmdir "$dir" 2>/dev/null || true; done
    rm -f "$made_dirs"
  fi
  if getent passwd loa >/dev/null; then userdel loa; fi
  if getent group loa >/dev/null; then groupdel loa; fi
  rm -f "$owned"
}

cleanup() {
  if [ -n "$loa_pid" ] && kill -0 "$loa_pid" 2>/dev/null; then
    kill -KILL "$loa_pid" 2>/dev/null || true
    wait "$loa_pid" 2>/dev/null || true
  fi
  if [ -f "$owned" ]; then uninstall; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -f "$owned" ]; then
  say "removing what an interrupted run left"
  uninstall
fi
for p in "${paths[@]}"; do
  [ -e "$p" ] && { echo "test-install: $p exists and is not this test's: not touching it" >&2; exit 1; }
done
if getent passwd loa >/dev/null || getent group loa >/dev/null; then
  echo "test-install: user or group loa exists and is not this test's: not touching it" >&2
  exit 1
fi
touch "$owned"
LC_ALL=C mkdir -pv /etc/systemd/system | sed -n "s/^mkdir: created directory '\(.*\)'\$/\1/p" > "$made_dirs"

# ---- 1. The README's install block, command by command ----
python3 - "$repo/README.md" > "$work/install.sh" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"<!-- deploy-test: install -->\s*```sh\n(.*?)```", text, re.S)
if not m:
    sys.exit("README.md: no ```sh block after <!-- deploy-test: install -->")
for line in m.group(1).splitlines():
    line = line.split("  #", 1)[0].rstrip()   # trailing comments are the reader's
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    if line.startswith("sudo "):
        line = line[len("sudo "):]
    print(line.replace("target/release/loa", '"$LOA_BIN"'))
PY
say "README install steps:"
sed 's/^/    /' "$work/install.sh"
if ! LOA_BIN="$bin" bash -euxo pipefail "$work/install.sh" > "$work/install.log" 2>&1; then
  sed 's/^/    /' "$work/install.log"
  fail "an install step failed"
fi
sed 's/^/    /' "$work/install.log"

# ---- 2. The operator's edit of loa.env: a port nothing else uses here, and JSON logs ----
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[ -f /etc/loa/loa.env ] || fail "the install steps made no /etc/loa/loa.env"
sed -i -e "s|^#\?LOA_HTTP_ADDR=.*|LOA_HTTP_ADDR=127.0.0.1:$port|" \
       -e "s|^#\?LOA_LOG_FORMAT=.*|LOA_LOG_FORMAT=json|" /etc/loa/loa.env
grep -q "^LOA_HTTP_ADDR=127.0.0.1:$port$" /etc/loa/loa.env || fail "loa.env has no LOA_HTTP_ADDR line to edit"
grep -q "^LOA_LOG_FORMAT=json$" /etc/loa/loa.env || fail "loa.env has no LOA_LOG_FORMAT line to edit"

# ---- 3. What systemd would do with the installed unit ----
installed_unit=/etc/systemd/system/loa.service
[ -f "$installed_unit" ] || installed_unit="$unit"
python3 - "$installed_unit" "$work" <<'PY'
import os, pwd, shlex, sys
unit_path, work = sys.argv[1], sys.argv[2]
service, section = {}, None
for raw in open(unit_path, encoding="utf-8"):
    line = raw.strip()
    if not line or line[0] in "#;":
        continue
    if line.startswith("["):
        section = line.strip("[]")
        continue
    if section == "Service":
        key, _, value = line.partition("=")
        service.setdefault(key.strip(), []).append(value.strip())

def one(key, default=None):
    values = service.get(key)
    if not values:
        if default is None:
            sys.exit(f"{unit_path}: no {key}=")
        return default
    return values[-1]

user, group = one("User"), one("Group")
env = {}
for value in service.get("Environment", []):
    for assignment in shlex.split(value):
        k, _, v = assignment.partition("=")
        env[k] = v
# systemd: variables from EnvironmentFile= override those of Environment=.
for value in service.get("EnvironmentFile", []):
    optional = value.startswith("-")
    path = value.lstrip("-")
    if not os.path.exists(path):
        if optional:
            continue
        sys.exit(f"EnvironmentFile={path} does not exist: systemd would not start the unit")
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        k, sep, v = line.partition("=")
        if not sep:
            sys.exit(f"{path}: not KEY=VALUE: {line!r}")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        env[k.strip()] = v
entry = pwd.getpwnam(user)
state = one("StateDirectory", "")
# What systemd itself puts in a service's environment for User= and StateDirectory=.
env.update({
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": entry.pw_dir, "USER": user, "LOGNAME": user, "SHELL": entry.pw_shell,
})
if state:
    env["STATE_DIRECTORY"] = "/var/lib/" + state
with open(f"{work}/env", "w") as f:
    f.write("".join(f"{k}={v}\0" for k, v in env.items()))
argv = shlex.split(one("ExecStart"))
with open(f"{work}/argv", "w") as f:
    f.write("".join(a + "\0" for a in argv))
stop = one("TimeoutStopSec", "90s")
seconds = int(stop[:-1]) if stop.endswith("s") else int(stop)
with open(f"{work}/unit.sh", "w") as f:
    for name, value in [("unit_user", user), ("unit_group", group),
                        ("unit_workdir", one("WorkingDirectory")),
                        ("unit_umask", one("UMask", "0022")),
                        ("unit_state", state),
                        ("unit_state_mode", one("StateDirectoryMode", "0755")),
                        ("unit_stop_seconds", str(seconds))]:
        f.write(f"{name}={shlex.quote(value)}\n")
PY
# Set by unit.sh, written above from the unit.
unit_user="" unit_group="" unit_workdir="" unit_umask="" unit_state="" unit_state_mode=""
unit_stop_seconds=""
# shellcheck source=/dev/null
. "$work/unit.sh"
mapfile -d '' unit_env < "$work/env"
mapfile -d '' unit_argv < "$work/argv"
if [ -n "$unit_state" ]; then
  install -d -o "$unit_user" -g "$unit_group" -m "$unit_state_mode" "/var/lib/$unit_state"
fi
say "starting as $unit_user:$unit_group in $unit_workdir: ${unit_argv[*]}"
say "environment: $(printf '%s ' "${unit_env[@]}" | sed -E 's/(TOKEN|PASSWORD|SECRET)=[^ ]*/\1=…/g')"
(
  cd "$unit_workdir"
  umask "$unit_umask"
  exec setpriv --reuid="$unit_user" --regid="$unit_group" --init-groups \
    --no-new-privs --inh-caps=-all --bounding-set=-all \
    env -i "${unit_env[@]}" "${unit_argv[@]}"
) > "$work/loa.out" 2> "$work/loa.log" &
loa_pid=$!
echo "$loa_pid" > "$pid_file"

# ---- 4. Healthy, in the right place, JSON logs, clean stop ----
python3 - "$port" "$loa_pid" <<'PY' || fail "/healthz did not answer 200"
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
for _ in range(600):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            body = r.read().decode()
            if r.status == 200:
                print(f"test-install: GET /healthz: {r.status} {body}")
                sys.exit(0)
    except Exception:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("loa exited")
    time.sleep(0.1)
sys.exit("no answer within 60 s")
PY
db="/var/lib/$unit_state/loa.db"
[ -f "$db" ] || fail "no SQLite database at $db"
[ "$(stat -c %U "$db")" = "$unit_user" ] || fail "$db is owned by $(stat -c %U "$db"), not $unit_user"
say "database: $(stat -c '%n %U:%G %a' "$db")"
[ "$(stat -c %U "/proc/$loa_pid")" = "$unit_user" ] || fail "loa does not run as $unit_user"
say "process $loa_pid: $(tr '\0' ' ' < "/proc/$loa_pid/cmdline")as $(stat -c %U "/proc/$loa_pid"), in $(readlink "/proc/$loa_pid/cwd")"

kill -TERM "$loa_pid"
status=""
for _ in $(seq 1 $((unit_stop_seconds * 10))); do
  if ! kill -0 "$loa_pid" 2>/dev/null; then
    status=0
    wait "$loa_pid" || status=$?
    break
  fi
  sleep 0.1
done
[ -n "$status" ] || fail "loa did not stop within TimeoutStopSec=${unit_stop_seconds}s of SIGTERM"
loa_pid=""
[ "$status" -eq 0 ] || fail "loa exited with status $status after SIGTERM"
say "stopped on SIGTERM, exit status 0"

python3 - "$work/loa.log" <<'PY' || fail "a log line is not JSON"
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8").read().splitlines() if l.strip()]
if not lines:
    sys.exit("no log lines")
for line in lines:
    try:
        event = json.loads(line)
    except ValueError as e:
        sys.exit(f"not JSON ({e}): {line!r}")
    if not {"timestamp", "level", "message"} <= event.keys():
        sys.exit(f"no timestamp, level or message: {line!r}")
print(f"test-install: {len(lines)} log lines, each JSON; the last: {lines[-1]}")
PY

say "ok: installed as the README says, healthy, stopped cleanly; removing it"
