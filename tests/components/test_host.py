"""HostConfiguration: the trigger digests on a temporary tree, the Command it registers under
Pulumi's mock runtime, and its runner with the real ansible-playbook (connection local)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.host import (
    PLAYBOOK,
    RUNNER,
    HostConfiguration,
    HostConfigurationArgs,
    playbook_command,
    runner_environment,
    tree_digest,
    vars_digest,
)
from tests.components.conftest import Render, unsecret

PASSWORD = "restic-password-never-print-me"  # noqa: S105 - test value
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAtestkeybody\n-----END OPENSSH PRIVATE KEY-----\n"  # noqa: E501, S105
KNOWN_HOSTS = "203.0.113.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n"
VENV_BIN = Path(sys.executable).parent

SITE = """\
- name: Test site
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Keep what arrived
      ansible.builtin.copy:
        dest: "{{ out_dir }}/arrived.json"
        content: "{{ {'password': restic_password, 'plain': plain_value} | to_json }}"
        mode: "0600"
    - name: Look at the key file
      ansible.builtin.stat:
        path: "{{ lookup('env', 'ANSIBLE_PRIVATE_KEY_FILE') }}"
      register: key
    - name: Keep what the run saw
      ansible.builtin.copy:
        dest: "{{ out_dir }}/run.json"
        content: "{{ {'mode': key.stat.mode, 'key': lookup('env', 'ANSIBLE_PRIVATE_KEY_FILE'),
                      'config': lookup('env', 'ANSIBLE_CONFIG'),
                      'ssh': lookup('env', 'ANSIBLE_SSH_COMMON_ARGS'),
                      'leftover': lookup('env', 'DEZKY_ANSIBLE_SECRET_VARS')} | to_json }}"
        mode: "0600"
    - name: Print the password (the runner must hide it)
      ansible.builtin.debug:
        msg: "the password is {{ restic_password }}"
    - name: Fail on request
      ansible.builtin.fail:
        msg: "failed while holding {{ restic_password }}"
      when: fail_now | default(false)
"""


def make_repo(root: Path) -> Path:
    (root / "ansible" / "playbooks").mkdir(parents=True)
    (root / "ansible" / "roles" / "base" / "tasks").mkdir(parents=True)
    (root / "ansible" / "ansible.cfg").write_text("[defaults]\nroles_path = ./roles\n")
    (root / PLAYBOOK).write_text(SITE)
    (root / "ansible" / "roles" / "base" / "tasks" / "main.yml").write_text("---\n[]\n")
    return root


# --- digests -------------------------------------------------------------------------------


def test_a_role_change_changes_the_tree_digest(tmp_path: Path) -> None:
    root = make_repo(tmp_path) / "ansible"
    before = tree_digest(root)
    assert tree_digest(root) == before  # stable
    role = root / "roles" / "base" / "tasks" / "main.yml"
    role.write_text("---\n- name: x\n  ansible.builtin.ping:\n")
    changed = tree_digest(root)
    assert changed != before
    (root / "roles" / "base" / "defaults").mkdir()
    assert tree_digest(root) == changed  # an empty directory is nothing to run
    (root / "roles" / "base" / "defaults" / "main.yml").write_text("")
    assert tree_digest(root) != changed  # a new (even empty) file is
    role.rename(root / "roles" / "base" / "tasks" / "other.yml")
    assert tree_digest(root) not in (before, changed)


def test_the_tree_digest_frames_names_and_contents(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("yz")
    (b / "xy").write_text("z")
    assert tree_digest(a) != tree_digest(b)


def test_vars_digest_ignores_key_order_but_not_values() -> None:
    one = {"restic": {"sources": ["mail"], "password": "p"}, "host": "h"}
    reordered = {"host": "h", "restic": {"password": "p", "sources": ["mail"]}}
    assert vars_digest(one) == vars_digest(reordered)
    assert vars_digest(one) != vars_digest({**one, "host": "h2"})
    assert vars_digest(one) != vars_digest({**one, "restic": {"sources": ["mail", "files"]}})


# --- the component under mocks -------------------------------------------------------------

CMD = "command:local:Command"


def args(repo: Path, **change: Any) -> HostConfigurationArgs:
    values: dict[str, Any] = {
        "host": "203.0.113.10",
        "ssh_private_key": KEY,
        "known_hosts": KNOWN_HOSTS,
        "variables": {"plain_value": "visible", "restic_sources": ["mail"]},
        "secret_variables": {"restic_password": PASSWORD},
        "repo_root": repo,
    }
    values.update(change)
    return HostConfigurationArgs(**values)


def test_the_command_runs_the_site_playbook_without_secrets_on_argv(
    tmp_path: Path, render: Render
) -> None:
    repo = make_repo(tmp_path)
    recorder, monitor, _ = render(functools.partial(HostConfiguration, "host", args(repo)))

    typ, inputs = recorder.by_name["host-ansible"]
    assert typ == CMD
    assert monitor.options[CMD]["parent"].endswith("$dezky:host:HostConfiguration::host")
    assert inputs["create"] == (
        "ansible-playbook -i 203.0.113.10, ansible/playbooks/site.yml --extra-vars '@{vars_file}'"
    )
    assert inputs["interpreter"] == ["python3", "-c", RUNNER]
    assert "dir" not in inputs  # the checkout's path is no input: DEZKY_REPO at run time
    assert inputs["logging"] == "none"
    assert inputs["addPreviousOutputInEnv"] is False

    secret, environment = unsecret(inputs["environment"])
    assert secret  # the whole environment is secret in state
    assert set(environment) == {
        "ANSIBLE_CONFIG", "ANSIBLE_REMOTE_USER", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_NOCOLOR",
        "ANSIBLE_RETRY_FILES_ENABLED", "DEZKY_ANSIBLE_VARS", "DEZKY_ANSIBLE_SECRET_VARS",
        "DEZKY_SSH_PRIVATE_KEY", "DEZKY_SSH_KNOWN_HOSTS",
    }  # fmt: skip
    assert environment["ANSIBLE_CONFIG"] == "ansible/ansible.cfg"
    assert environment["ANSIBLE_REMOTE_USER"] == "root"
    assert json.loads(environment["DEZKY_ANSIBLE_SECRET_VARS"]) == {"restic_password": PASSWORD}
    assert json.loads(environment["DEZKY_ANSIBLE_VARS"])["plain_value"] == "visible"
    assert environment["DEZKY_SSH_PRIVATE_KEY"] == KEY

    assert inputs["triggers"] == [  # plain: a plan shows which one changed
        tree_digest(repo / "ansible"),
        vars_digest({"plain_value": "visible", "restic_sources": ["mail"]}),
    ]

    visible = json.dumps([inputs["create"], inputs["interpreter"], inputs["triggers"]])
    assert PASSWORD not in visible
    assert "OPENSSH PRIVATE KEY" not in visible


def test_a_changed_role_or_variable_changes_the_triggers(tmp_path: Path, render: Render) -> None:
    repo = make_repo(tmp_path)

    def digests(**change: Any) -> list[str]:
        recorder, _, _ = render(functools.partial(HostConfiguration, "h", args(repo, **change)))
        return list(recorder.by_name["h-ansible"][1]["triggers"])

    def environment(**change: Any) -> Any:
        recorder, _, _ = render(functools.partial(HostConfiguration, "h", args(repo, **change)))
        return recorder.by_name["h-ansible"][1]["environment"]

    first = digests()
    assert digests() == first
    plain = digests(variables={"plain_value": "other", "restic_sources": ["mail"]})
    assert [a == b for a, b in zip(plain, first, strict=True)] == [True, False]
    # A secret changes the secret environment instead: still a change of the command.
    new_secret = {"restic_password": PASSWORD + "2"}
    assert digests(secret_variables=new_secret) == first
    assert environment(secret_variables=new_secret) != environment()
    (repo / "ansible" / "roles" / "base" / "tasks" / "main.yml").write_text("---\n- meta: noop\n")
    changed = digests()
    assert [a == b for a, b in zip(changed, first, strict=True)] == [False, True]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"host": "203.0.113.10; rm -rf /"}, "host"),
        ({"user": "Root Admin"}, "user"),
        ({"variables": {"restic_password": "x"}}, "both set"),
    ],
)
def test_bad_arguments_fail_before_registering(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        HostConfiguration("h", args(make_repo(tmp_path), **change))


def test_a_missing_playbook_fails_before_registering(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="site.yml does not exist"):
        HostConfiguration("h", args(tmp_path))


# --- the runner with the real ansible-playbook ---------------------------------------------


def run_runner(repo: Path, out: Path, fail: bool) -> subprocess.CompletedProcess[str]:
    """Run the command exactly as pulumi-command would: interpreter + [create], in ``dir``."""
    variables = {"plain_value": "visible", "out_dir": str(out), "fail_now": fail}
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(out),
        "DEZKY_REPO": str(repo),
        **runner_environment(variables, {"restic_password": PASSWORD}, KEY, KNOWN_HOSTS, "root"),
    }
    return subprocess.run(
        ["python3", "-c", RUNNER, playbook_command("127.0.0.1")],
        cwd=out, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_runner_delivers_vars_and_key_and_hides_the_secrets(tmp_path: Path) -> None:
    repo, out = make_repo(tmp_path / "repo"), tmp_path / "out"
    out.mkdir()
    done = run_runner(repo, out, fail=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PLAY RECAP")
    assert "ok=4" in done.stdout and "failed=0" in done.stdout and "skipped=1" in done.stdout
    assert json.loads((out / "arrived.json").read_text()) == {
        "password": PASSWORD,
        "plain": "visible",
    }
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "0600"
    assert run["config"] == "ansible/ansible.cfg"
    assert "StrictHostKeyChecking=yes" in run["ssh"]
    assert run["leftover"] == ""  # the runner does not hand its inputs on to ansible
    assert not Path(run["key"]).exists()  # removed with the run's directory
    assert not Path(run["key"]).parent.exists()
    assert PASSWORD not in done.stdout + done.stderr


def test_a_failed_run_shows_its_tail_with_the_secrets_redacted(tmp_path: Path) -> None:
    repo, out = make_repo(tmp_path / "repo"), tmp_path / "out"
    out.mkdir()
    done = run_runner(repo, out, fail=True)

    assert done.returncode == 2
    assert "failed while holding [REDACTED]" in done.stderr
    assert "the password is [REDACTED]" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "b3BlbnNzaC1rZXktdjEAAAAAtestkeybody" not in done.stdout + done.stderr
    assert not Path(json.loads((out / "run.json").read_text())["key"]).parent.exists()


def test_the_runner_reports_a_missing_ansible(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    # A PATH with python3 and nothing else: no ansible-playbook, wherever one is installed.
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    env = {"PATH": str(bare), "DEZKY_REPO": str(repo),
           **runner_environment({}, {}, KEY, KNOWN_HOSTS, "root")}  # fmt: skip
    done = subprocess.run(
        [str(bare / "python3"), "-c", RUNNER, playbook_command("127.0.0.1")],
        cwd=repo, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 127
    assert "ansible: cannot run ansible-playbook" in done.stderr


def test_the_runner_refuses_to_guess_the_checkout(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", **runner_environment({}, {}, KEY, KNOWN_HOSTS, "root")}
    done = subprocess.run(
        ["python3", "-c", RUNNER, playbook_command("127.0.0.1")],
        cwd=make_repo(tmp_path / "repo"), env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "DEZKY_REPO does not name a dezky-infra checkout" in done.stderr
