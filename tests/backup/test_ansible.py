"""The restic role: syntax check, then real connection=local runs rendering into a temp root.

What is checked: the platform's four sources (the example documented in defaults/main.yml, which
must match stacks/platform_host.py) render to units, aliases, environment and password files;
the Storage Box key and the passwords arrive apart from the plain sources and never reach the
output; the dump commands reach bash exactly as typed once systemd has unquoted and expanded the
unit line, and they run (with stand-ins for k3s and the dump tools) to the expected dump.

The idempotence run (a second converge reports no changes) belongs to the converge test against
a throw-away host (tests/ansible); here each run renders once. On a 2-CPU machine the full run
(five sources, ~70 loop items) takes ~40 s, the refusals ~1 s each, the file ~100 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
PLAYBOOK = ANSIBLE / "playbooks" / "backups.yml"
DEFAULTS = ANSIBLE / "roles" / "restic" / "defaults" / "main.yml"
SECRET = "pw-from-pulumi-secret-93"  # noqa: S105 - test repository password
KEY_PATH = "/root/.ssh/restic_ed25519"
# As the brief and the platform's stack give them: typed once, here, for the comparisons below.
MONGODB_DUMP = (
    "k3s kubectl -n platform exec statefulset/mongodb -- sh -c 'mongodump --archive --gzip "
    '--username "$MONGO_INITDB_ROOT_USERNAME" --password "$MONGO_INITDB_ROOT_PASSWORD" '
    "--authenticationDatabase admin'"
)
POSTGRES_DUMP = (
    "k3s kubectl -n authentik exec statefulset/authentik-postgresql -- sh -c "
    "'PGPASSWORD=\"$POSTGRES_PASSWORD\" pg_dump -U authentik --clean --if-exists authentik'"
)
# A command with every character systemd or bash treats specially, run both ways below.
TRICKY_DUMP = (
    "printf '%s|' \"it's\" '$HOME' \"${DUMP_VAR}\" 'back\\slash' \"%n\" '$$' \"a\\\"b\" "
    '&& echo "$((6 * 7))" \\; %%'
)


def _playbook_bin() -> str:
    found = Path(sys.executable).parent / "ansible-playbook"
    if not found.exists():
        pytest.fail(
            "ansible-playbook is not installed in the venv: add ansible-core==2.19.14",
            pytrace=False,
        )
    return str(found)


def _run(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(root),
        "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(root / ".ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "LC_ALL": "C.UTF-8",
    }
    return subprocess.run(
        [_playbook_bin(), *args, str(PLAYBOOK)],
        env=env,
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _documented_sources() -> list[dict[str, object]]:
    """The commented example of defaults/main.yml ("The platform's four sources"), parsed."""
    text = DEFAULTS.read_text()
    block = text.split("# The platform's four sources", 1)[1].split("\nrestic_sources:", 1)[0]
    lines = block.splitlines()[1:]
    assert lines and all(line.startswith("#") for line in lines), block
    loaded = yaml.safe_load("\n".join(line[2:] if line.startswith("# ") else "" for line in lines))
    assert isinstance(loaded, list)
    return loaded


def _passwords(*names: str) -> dict[str, dict[str, str]]:
    return {n: {"primary": f"{SECRET}-{n}-primary", "dr": f"{SECRET}-{n}-dr"} for n in names}


def _keypair(tmp_path: Path, *, passphrase: str = "") -> tuple[str, str]:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "dezky", "-f", str(key)],
        check=True,
    )
    private, public = key.read_text(), key.with_suffix(".pub").read_text()
    key.unlink()
    key.with_suffix(".pub").unlink()
    return private, public


def _render(tmp_path: Path, *flags: str, **variables: object) -> subprocess.CompletedProcess[str]:
    """backups.yml with connection=local into tmp_path/root, as root of nothing: no packages,
    no systemd, owner the current user."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    merged = {
        "restic_target": "all",
        "restic_become": False,
        "restic_root_dir": str(root),
        "restic_manage_packages": False,
        "restic_manage_systemd": False,
        "restic_owner": str(os.getuid()),
        "restic_group": str(os.getgid()),
        "restic_known_hosts": ["[u1.your-storagebox.de]:23 ssh-ed25519 AAAAC3Nz"],
        **variables,
    }
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(merged))
    return _run(
        *flags,
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"@{extra}",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        root=tmp_path,
    )


def test_syntax_check(tmp_path: Path) -> None:
    done = _run("--syntax-check", "-i", "localhost,", root=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_documented_sources_are_the_platforms() -> None:
    from stacks.platform_host import BACKUP_SOURCES

    documented = _documented_sources()
    assert [s["name"] for s in documented] == ["mail", "volumes", "mongodb", "postgres"]
    by_name = {s["name"]: s for s in documented}
    assert by_name["mail"]["path"] == "/var/lib/stalwart"
    assert by_name["volumes"]["path"] == "/var/lib/rancher/k3s/storage"
    assert by_name["mongodb"]["dump_command"] == MONGODB_DUMP
    assert by_name["mongodb"]["dump_file"] == "mongodb.archive.gz"
    assert by_name["postgres"]["dump_command"] == POSTGRES_DUMP
    assert by_name["postgres"]["dump_file"] == "postgres.sql"
    for source in BACKUP_SOURCES:  # what the stack passes, minus the boxes
        entry = {k: v for k, v in by_name[source.name].items() if k not in ("primary", "dr")}
        assert entry == source.role_entry()
    for source in documented:
        for box in ("primary", "dr"):
            assert set(source[box]) == {"host", "user", "path"}  # never a password


@dataclass(frozen=True)
class Rendered:
    """One run of the role: the platform's four sources plus a tricky dump command."""

    root: Path
    spool: Path
    private: str
    public: str
    output: str

    @property
    def system(self) -> Path:
        return self.root / "etc" / "systemd" / "system"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The role run once, verbose (every task's result printed), the spool outside the root so
    the dumps can run for real."""
    tmp_path = tmp_path_factory.mktemp("rendered")
    private, public = _keypair(tmp_path)
    sources = _documented_sources()
    tricky = {**sources[3], "name": "tricky", "dump_command": TRICKY_DUMP}
    del tricky["dump_file"]
    names = [str(s["name"]) for s in [*sources, tricky]]
    spool = tmp_path / "spool"
    done = _render(
        tmp_path,
        "-v",
        "--diff",  # a diff shows what a file gets: only no_log keeps the secrets out of it
        restic_sources=[*sources, tricky],
        restic_passwords=_passwords(*names),
        restic_ssh_private_key=private,
        restic_spool_dir=str(spool),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return Rendered(tmp_path / "root", spool, private, public, done.stdout + done.stderr)


def test_renders_the_platform_sources_into_a_root(rendered: Rendered) -> None:
    output, private, public = rendered.output, rendered.private, rendered.public
    names = ["mail", "volumes", "mongodb", "postgres", "tricky"]
    assert SECRET not in output
    body = [line for line in private.splitlines() if "PRIVATE KEY" not in line]
    assert body and not [line for line in body if line in output]

    root = rendered.root
    etc = root / "etc"
    for name in names:
        for box in ("primary", "dr"):
            password = etc / "restic" / f"{name}-{box}.password"
            assert password.read_text() == f"{SECRET}-{name}-{box}\n"
            assert stat.S_IMODE(password.stat().st_mode) == 0o600
    key = root / KEY_PATH.lstrip("/")
    assert key.read_text() == private
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.with_suffix(".pub").read_text().split()[:2] == public.split()[:2]
    assert stat.S_IMODE(key.with_suffix(".pub").stat().st_mode) == 0o644

    system = rendered.system
    units = sorted(p.name for p in system.iterdir())
    assert len(units) == 5 * 3 * 2
    assert "restic-backup-volumes.timer" in units and "restic-check-postgres.service" in units
    for unit in units:
        assert SECRET not in (system / unit).read_text()

    mail = (system / "restic-backup-mail.service").read_text()
    assert "ExecStart=/usr/bin/restic backup --tag mail /var/lib/stalwart\n" in mail
    assert "forget --tag mail --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --prune" in mail
    assert "EnvironmentFile=/etc/restic/mail-backup.env" in mail
    assert "ExecStartPre" not in mail
    volumes = (system / "restic-backup-volumes.service").read_text()
    assert "backup --tag volumes /var/lib/rancher/k3s/storage\n" in volumes
    mongo = (system / "restic-backup-mongodb.service").read_text()
    spool = rendered.spool / "mongodb"
    assert f"ExecStart=/usr/bin/restic backup --tag mongodb {spool}\n" in mongo
    assert f"ExecStartPre=/usr/bin/install -d -m 0700 {spool}\n" in mongo
    timer = (system / "restic-backup-postgres.timer").read_text()
    assert re.search(r"^OnCalendar=\*-\*-\* 02:50:00$", timer, re.M)
    check = (system / "restic-check-mail.service").read_text()
    assert check.count("check --read-data-subset=10%%") == 2
    assert "--password-file /etc/restic/mail-dr.password" in check
    copy_env = (etc / "restic" / "postgres-copy.env").read_text()
    assert "RESTIC_REPOSITORY=sftp:restic-postgres-dr:postgres\n" in copy_env
    assert "RESTIC_FROM_REPOSITORY=sftp:restic-postgres-primary:postgres\n" in copy_env
    assert "RESTIC_PASSWORD_FILE=/etc/restic/postgres-dr.password\n" in copy_env
    ssh = (etc / "ssh" / "ssh_config.d" / "restic.conf").read_text()
    assert "Host restic-mongodb-dr\n    HostName u2.your-storagebox.de\n    User u2-sub3\n" in ssh
    assert ssh.count(f"IdentityFile {KEY_PATH}\n") == 2 * len(names)
    assert "Port 23\n" in ssh and "StrictHostKeyChecking yes" in ssh


# --- the dump commands through systemd ------------------------------------------------------

_ESCAPES = {"\\": "\\", "'": "'", '"': '"'}


def systemd_words(value: str) -> list[str]:
    """An Exec*= value split as systemd does (extract_first_word with UNQUOTE|CUNESCAPE: quotes
    anywhere in a word, C escapes inside quotes too), before %specifiers and $variables. Only
    the escapes the role emits are known; anything else is refused, not guessed."""
    words: list[str] = []
    i = 0
    while True:
        while i < len(value) and value[i] in " \t":
            i += 1
        if i == len(value):
            return words
        word: list[str] = []
        quote = ""
        while i < len(value):
            c = value[i]
            if c == "\\":
                escaped = value[i + 1 : i + 2]
                if escaped not in _ESCAPES:
                    raise ValueError(f"escape {value[i : i + 2]!r} at {i}")
                word.append(_ESCAPES[escaped])
                i += 2
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
            elif c in "'\"":
                quote = c
            elif c in " \t":
                break
            else:
                word.append(c)
            i += 1
        if quote:
            raise ValueError(f"unterminated {quote} in {value!r}")
        words.append("".join(word))


def undouble(word: str, char: str) -> str:
    """systemd's expansion of %specifiers or $VARIABLES where only the doubled form appears."""
    parts = word.split(char * 2)
    if any(char in part for part in parts):
        raise ValueError(f"systemd would expand a {char} in {word!r}")
    return char.join(parts)


def exec_argv(line: str) -> list[str]:
    """The argv systemd runs for an ExecStartPre= line of the rendered unit."""
    value = line.split("=", 1)[1]
    return [undouble(undouble(w, "%"), "$") for w in systemd_words(value)]


def _stand_ins(tmp_path: Path) -> tuple[Path, Path]:
    """k3s that runs what follows ``--`` "in the container" (its own PATH and environment), and
    dump tools that print their arguments and PGPASSWORD as JSON: the dump."""
    host_bin, container_bin = tmp_path / "host-bin", tmp_path / "container-bin"
    host_bin.mkdir()
    container_bin.mkdir()
    k3s = host_bin / "k3s"
    k3s.write_text(
        f"#!{sys.executable}\n"
        "import json, os, shutil, sys\n"
        "inner = sys.argv[sys.argv.index('--') + 1:]\n"
        "env = {'PATH': os.environ['CONTAINER_PATH'], **json.loads(os.environ['CONTAINER_ENV'])}\n"
        "os.execve(shutil.which(inner[0], path=env['PATH']), inner, env)\n"
    )
    tool = (
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'PGPASSWORD': os.environ.get('PGPASSWORD')}))\n"
    )
    for name in ("mongodump", "pg_dump"):
        (container_bin / name).write_text(tool)
    for made in (k3s, container_bin / "mongodump", container_bin / "pg_dump"):
        made.chmod(0o755)
    return host_bin, container_bin


def _pre_lines(system: Path, source: str) -> list[str]:
    unit = (system / f"restic-backup-{source}.service").read_text()
    return [line for line in unit.splitlines() if line.startswith("ExecStartPre=")]


@pytest.mark.parametrize(
    ("source", "command", "dump_file"),
    [
        ("mongodb", MONGODB_DUMP, "mongodb.archive.gz"),
        ("postgres", POSTGRES_DUMP, "postgres.sql"),
        ("tricky", TRICKY_DUMP, "tricky.dump"),
    ],
    ids=["mongodb", "postgres", "tricky"],
)
def test_bash_gets_the_dump_command_as_typed(
    rendered: Rendered, source: str, command: str, dump_file: str
) -> None:
    system, spool = rendered.system, rendered.spool
    install, dump = _pre_lines(system, source)
    assert exec_argv(install) == ["/usr/bin/install", "-d", "-m", "0700", f"{spool}/{source}"]
    target = f"{spool}/{source}/{dump_file}"
    script = 'eval "$1" > "$2.tmp" && mv "$2.tmp" "$2"'
    assert exec_argv(dump) == [
        "/bin/bash",
        "-o",
        "pipefail",
        "-c",
        script,
        "restic-dump",
        command,
        target,
    ]


def test_the_dumps_run_with_the_containers_credentials(rendered: Rendered, tmp_path: Path) -> None:
    """Each ExecStartPre run as systemd would (argv, no shell around it): the variables are
    expanded by the container's shell, not by systemd or the host's bash (decoys there)."""
    system, spool = rendered.system, rendered.spool
    host_bin, container_bin = _stand_ins(tmp_path)
    password = "pa$$ 'w\"o%rd \\x"  # noqa: S105 - test value, every special character
    container = {
        "MONGO_INITDB_ROOT_USERNAME": "root",
        "MONGO_INITDB_ROOT_PASSWORD": password,
        "POSTGRES_PASSWORD": password,
    }
    env = {
        "PATH": f"{host_bin}:/usr/bin:/bin",
        "CONTAINER_PATH": f"{container_bin}:/usr/bin:/bin",
        "CONTAINER_ENV": json.dumps(container),
        "MONGO_INITDB_ROOT_PASSWORD": "host-decoy",
        "POSTGRES_PASSWORD": "host-decoy",
        "DUMP_VAR": "two  words",
        "HOME": str(tmp_path),
    }
    for source in ("mongodb", "postgres", "tricky"):
        for line in _pre_lines(system, source):
            done = subprocess.run(
                exec_argv(line), env=env, capture_output=True, text=True, check=False, timeout=30
            )
            assert done.returncode == 0, (source, line, done.stderr)
    mongo = json.loads((spool / "mongodb" / "mongodb.archive.gz").read_text())
    assert mongo == {
        "argv": ["--archive", "--gzip", "--username", "root", "--password", password]
        + ["--authenticationDatabase", "admin"],
        "PGPASSWORD": None,
    }
    postgres = json.loads((spool / "postgres" / "postgres.sql").read_text())
    assert postgres == {
        "argv": ["-U", "authentik", "--clean", "--if-exists", "authentik"],
        "PGPASSWORD": password,
    }
    assert stat.S_IMODE((spool / "postgres").stat().st_mode) == 0o700
    assert not list(spool.glob("*/*.tmp"))
    # The tricky command, run straight by bash, prints what it printed through the unit.
    direct = subprocess.run(
        ["/bin/bash", "-o", "pipefail", "-c", TRICKY_DUMP],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert (spool / "tricky" / "tricky.dump").read_text() == direct.stdout
    assert direct.stdout == "it's|$HOME|two  words|back\\slash|%n|$$|a\"b|42 ; %%\n"


def test_the_units_pass_systemd_analyze(rendered: Rendered, tmp_path: Path) -> None:
    """The real systemd: the units verify without a warning, and the word it unquotes for
    bash -c is the one the model above unquotes (seen through its unknown-escape warning)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail(
            "systemd-analyze is missing: install the Debian package systemd (.ci/apt-packages)",
            pytrace=False,
        )
    system = rendered.system
    services = sorted(str(p) for p in system.glob("*.service"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", *services],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stderr
    for source in ("mongodb", "postgres", "tricky"):
        line = _pre_lines(system, source)[1].rsplit(" ", 1)[0]  # the command last
        probe = tmp_path / f"probe-{source}.service"
        probe.write_text(f"[Service]\nType=oneshot\n{line}\\q\nExecStart=/bin/true\n")
        seen = subprocess.run(
            [analyze, "verify", "--man=no", str(probe)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        found = re.search(r'Ignoring unknown escape sequences: "(.*)"$', seen.stderr, re.M)
        assert found, seen.stderr
        assert found.group(1) == systemd_words(line.split("=", 1)[1])[-1] + "\\q"


# --- refusals -------------------------------------------------------------------------------


def _mail() -> dict[str, object]:
    return dict(_documented_sources()[0])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no dr password", "restic_passwords.mail: needs a primary and a dr password"),
        ("empty primary", "restic_passwords.mail: needs a primary and a dr password"),
        ("padded password", "restic_passwords.mail: needs a primary and a dr password"),
        ("password in the plain sources", "passwords belong in restic_passwords (secret)"),
        ("unknown source", "(unknown: postgres)"),
        ("multi-line dump", "restic source mail: needs a name"),
    ],
    ids=["no-dr", "empty-primary", "padded", "in-plain-sources", "unknown-source", "multi-line"],
)
def test_bad_passwords_and_sources_are_refused_without_printing_a_secret(
    tmp_path: Path, case: str, expected: str
) -> None:
    private, _ = _keypair(tmp_path)
    mail = _mail()
    passwords: dict[str, dict[str, str]] = _passwords("mail")
    if case == "no dr password":
        del passwords["mail"]["dr"]
    elif case == "empty primary":
        passwords["mail"]["primary"] = ""
    elif case == "padded password":
        passwords["mail"]["dr"] = f" {SECRET}-padded "
    elif case == "password in the plain sources":
        mail["primary"] = {**mail["primary"], "password": f"{SECRET}-plain"}  # type: ignore[dict-item]
    elif case == "unknown source":
        passwords.update(_passwords("postgres"))
    elif case == "multi-line dump":
        del mail["path"]
        mail["dump_command"] = "echo one\necho two"
    done = _render(
        tmp_path,
        "-vvv",
        restic_sources=[mail],
        restic_passwords=passwords,
        restic_ssh_private_key=private,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert expected in output, output[-3000:]
    if case != "password in the plain sources":  # that one is plain by mistake: shown as given
        assert SECRET not in output
    assert not [line for line in private.splitlines()[1:-1] if line in output]
    assert not (tmp_path / "root" / "etc" / "restic").exists()  # refused before writing


def test_without_a_key_the_key_file_must_exist(tmp_path: Path) -> None:
    variables = {"restic_sources": [_mail()], "restic_passwords": _passwords("mail")}
    refused = _render(tmp_path, **variables)
    assert refused.returncode != 0
    assert f"restic_ssh_private_key is empty and {tmp_path / 'root'}{KEY_PATH} does not" in (
        refused.stdout
    )
    private, _ = _keypair(tmp_path)
    key = tmp_path / "root" / KEY_PATH.lstrip("/")
    key.parent.mkdir(parents=True)
    key.write_text(private)
    done = _render(tmp_path, **variables)
    assert done.returncode == 0, done.stdout[-3000:]
    assert key.read_text() == private and not key.with_suffix(".pub").exists()


def test_an_encrypted_key_is_refused(tmp_path: Path) -> None:
    private, _ = _keypair(tmp_path, passphrase="unlock-me")  # noqa: S106 - test value
    done = _render(
        tmp_path,
        "-v",
        restic_sources=[_mail()],
        restic_passwords=_passwords("mail"),
        restic_ssh_private_key=private,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Derive the public half of the Storage Box key" in output
    assert "passphrase" in output, output[-3000:]
    assert not [line for line in private.splitlines()[1:-1] if line in output]
