"""The platform host's configuration: ``ansible/playbooks/site.yml`` run from the stack.

``HostConfiguration`` is one ``pulumi_command.local.Command`` that runs, from the checkout the
engine names in ``DEZKY_REPO`` (automation.engine sets it; not an input, so another path on
another machine is no change)::

    ansible-playbook -i '<host>,' ansible/playbooks/site.yml --extra-vars @{vars_file}

It runs again whenever a file under ``ansible/`` or a variable changes: its ``triggers`` are
the digests of the whole ``ansible/`` tree and of the plain variables; a changed secret
variable changes its (secret) ``environment``, which runs it again as well.

Secrets never reach a command line or a log:

* the variables (``secret_variables`` marked secret), the SSH private key and the pinned
  ``known_hosts`` reach the command through its environment; a small stdlib-only runner
  (``RUNNER``, run as ``python3 -c``) writes them into 0600 files of a private temporary
  directory, removed when the run ends, and substitutes ``{vars_file}`` in the command with
  that file; ansible gets the key through ``ANSIBLE_PRIVATE_KEY_FILE``;
* the runner redacts every string of ``secret_variables`` (and the key) from ansible's output
  before it prints it: on success only the ``PLAY RECAP``, on failure the last lines, which
  pulumi-command puts into its error message;
* the command is created with ``logging: none`` (nothing streamed into the engine's log); its
  ``stdout``/``stderr`` outputs are secret because some of its inputs are.

``ansible-playbook`` and ``python3`` must be on the PATH of the Pulumi run.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command

REPO_ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = "ansible"
PLAYBOOK = "ansible/playbooks/site.yml"
ANSIBLE_CONFIG = "ansible/ansible.cfg"
VARS_PLACEHOLDER = "{vars_file}"
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

RUNNER = r"""
import json, os, shlex, subprocess, sys, tempfile

def leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, str) and len(value) >= 4:
        yield value

env = dict(os.environ)
# The checkout comes from the engine's environment, not an input: a different path on another
# machine must not count as a change.
repo = env.get("DEZKY_REPO", "")
if not repo or not os.path.isfile(os.path.join(repo, "ansible", "playbooks", "site.yml")):
    print("ansible: DEZKY_REPO does not name a dezky-infra checkout (the engine sets it)",
          file=sys.stderr)
    sys.exit(2)
os.chdir(repo)
plain = json.loads(env.pop("DEZKY_ANSIBLE_VARS", "{}"))
secret = json.loads(env.pop("DEZKY_ANSIBLE_SECRET_VARS", "{}"))
key = env.pop("DEZKY_SSH_PRIVATE_KEY", "")
known_hosts = env.pop("DEZKY_SSH_KNOWN_HOSTS", "")
env.pop("PULUMI_COMMAND_STDOUT", None)
env.pop("PULUMI_COMMAND_STDERR", None)
hidden = set(leaves(secret)) | {line.strip() for line in key.splitlines() if len(line.strip()) >= 4}
hidden = sorted(hidden, key=len, reverse=True)

def redact(text):
    for value in hidden:
        text = text.replace(value, "[REDACTED]")
    return text

with tempfile.TemporaryDirectory(prefix="dezky-ansible-") as tmp:
    def write(name, text):
        path = os.path.join(tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return path

    vars_file = write("vars.json", json.dumps({**plain, **secret}))
    known = write("known_hosts", known_hosts.strip() + "\n")
    if key.strip():
        env["ANSIBLE_PRIVATE_KEY_FILE"] = write("id", key.strip() + "\n")
    env["ANSIBLE_SSH_COMMON_ARGS"] = (
        f"-o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null "
        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes"
    )
    argv = [arg.replace("{vars_file}", vars_file) for arg in shlex.split(sys.argv[1])]
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, check=False)
    except OSError as exc:
        print(f"ansible: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)
lines = redact(done.stdout + done.stderr).splitlines()
if done.returncode == 0:
    recap = [i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")]
    print("\n".join(lines[recap[-1]:] if recap else lines[-5:]))
else:
    print("\n".join(lines[-60:]), file=sys.stderr)
sys.exit(done.returncode)
"""
"""The runner ``python3 -c`` executes, with the ansible command line as its argument."""


def tree_digest(root: Path) -> str:
    """SHA-256 over every file under ``root``: sorted relative paths, each with its content.

    Lengths frame each path and content, so moving bytes between a name and a file (or
    renaming a file) changes the digest; directories without files do not count.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def vars_digest(variables: Mapping[str, Any]) -> str:
    """SHA-256 of the variables as canonical JSON (key order does not matter)."""
    canonical = json.dumps(variables, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def playbook_command(host: str) -> str:
    """The command line the runner executes (``{vars_file}`` is substituted by it)."""
    return shlex.join(
        ["ansible-playbook", "-i", f"{host},", PLAYBOOK, "--extra-vars", f"@{VARS_PLACEHOLDER}"]
    )


def runner_environment(
    variables: Mapping[str, Any],
    secret_variables: Mapping[str, Any],
    private_key: str,
    known_hosts: str,
    user: str,
) -> dict[str, str]:
    """The command's environment: ansible settings and the runner's inputs."""
    return {
        "ANSIBLE_CONFIG": ANSIBLE_CONFIG,
        "ANSIBLE_REMOTE_USER": user,
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "DEZKY_ANSIBLE_VARS": json.dumps(variables, sort_keys=True),
        "DEZKY_ANSIBLE_SECRET_VARS": json.dumps(secret_variables, sort_keys=True),
        "DEZKY_SSH_PRIVATE_KEY": private_key,
        "DEZKY_SSH_KNOWN_HOSTS": known_hosts,
    }


def _host_problem(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    return None if _HOST_RE.match(host) and ".." not in host else "not a host name or IP address"


@dataclass(frozen=True)
class HostConfigurationArgs:
    """Inputs of ``HostConfiguration``.

    ``host`` is the address ansible connects to (as ``user``, with ``ssh_private_key`` and
    only the pinned ``known_hosts`` lines); ``variables`` and ``secret_variables`` become the
    extra vars of the playbook (the same key in both is refused). Every string inside
    ``secret_variables`` is redacted from the output.
    """

    host: str
    ssh_private_key: pulumi.Input[str]
    known_hosts: pulumi.Input[str]
    variables: Mapping[str, Any] = field(default_factory=dict)
    secret_variables: Mapping[str, Any] = field(default_factory=dict)
    user: str = "root"
    repo_root: Path = REPO_ROOT


class HostConfiguration(pulumi.ComponentResource):
    """``ansible/playbooks/site.yml`` applied to the host, again whenever it or its vars change."""

    run: command.local.Command
    stdout: pulumi.Output[str]

    def __init__(
        self, name: str, args: HostConfigurationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if problem := _host_problem(args.host):
            raise ValueError(f"host: {args.host!r} is {problem}")
        if not _USER_RE.match(args.user):
            raise ValueError(f"user: {args.user!r} is not a user name")
        if overlap := sorted(set(args.variables) & set(args.secret_variables)):
            raise ValueError(f"variables and secret_variables both set {overlap}")
        ansible_dir = args.repo_root / ANSIBLE_DIR
        if not (args.repo_root / PLAYBOOK).is_file():
            raise ValueError(f"{args.repo_root / PLAYBOOK} does not exist")
        super().__init__("dezky:host:HostConfiguration", name, None, opts)
        plain = pulumi.Output.from_input(dict(args.variables))
        secret = pulumi.Output.secret(dict(args.secret_variables))
        key = pulumi.Output.secret(args.ssh_private_key)
        environment = pulumi.Output.all(plain, secret, key, args.known_hosts).apply(
            lambda v: runner_environment(v[0], v[1], v[2], v[3], args.user)
        )
        # Plain digests, so a plan names what changed: the ansible/ tree and the plain
        # variables. A changed secret changes the (secret) environment, which re-runs it too.
        digests: list[pulumi.Input[str]] = [tree_digest(ansible_dir), plain.apply(vars_digest)]
        self.run = command.local.Command(
            f"{name}-ansible",
            create=playbook_command(args.host),
            interpreter=["python3", "-c", RUNNER],
            environment=environment,
            triggers=digests,
            logging=command.local.Logging.NONE,
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.stdout = self.run.stdout
        self.register_outputs({})
