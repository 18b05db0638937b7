"""Kubernetes manifests through the real CLI: ConfigMaps, Secrets (data and
stringData), workload env values, List kinds, JSON, Helm charts, kustomize output on
stdin, and the bad input a repository holds (YAML bombs, broken YAML, huge values,
invalid base64)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import password, run_cli, token

pytestmark = pytest.mark.integration


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def scan(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    res = run_cli("scan", "k8s", *args, "-f", "json", input=input, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, (json.loads(res.stdout) if res.stdout.strip() else {}), res.stderr


def where(doc: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {
        (f["rule_id"], f["kind"], f.get("namespace"), f["name"], f.get("key"), f["line"])
        for f in doc["findings"]
    }


CM_TOKEN = token("ghp", 400)
DB_PASSWORD = password(401)
SECRET_TOKEN = token("ghp", 402)
ENV_TOKEN = token("ghp", 403)
CRON_TOKEN = token("ghp", 404)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    (root / "base").mkdir(parents=True)
    (root / "base" / "configmap.yaml").write_text(
        f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: prod
data:
  LOG_LEVEL: info
  GITHUB_TOKEN: {CM_TOKEN}
  application.properties: |
    server.port=8080
    spring.datasource.url=jdbc:postgresql://db:5432/app
    spring.datasource.password={DB_PASSWORD}
binaryData:
  blob.bin: {b64("not secret at all")}
---
apiVersion: v1
kind: Secret
metadata:
  name: api-creds
  namespace: prod
type: Opaque
data:
  token: {b64(SECRET_TOKEN)}
stringData:
  placeholder: changeme
"""
    )
    (root / "base" / "deployment.yaml").write_text(
        f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: prod}}
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          env:
            - {{name: MODE, value: up}}
      containers:
        - name: web
          env:
            - {{name: API_TOKEN, value: "{ENV_TOKEN}"}}
            - name: FROM_SECRET
              valueFrom: {{secretKeyRef: {{name: api-creds, key: token}}}}
"""
    )
    (root / "jobs.json").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "metadata": {"name": "nightly", "namespace": "ops"},
                        "spec": {
                            "jobTemplate": {
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "containers": [
                                                {
                                                    "name": "backup",
                                                    "env": [
                                                        {"name": "GH_TOKEN", "value": CRON_TOKEN}
                                                    ],
                                                }
                                            ]
                                        }
                                    }
                                }
                            }
                        },
                    }
                ],
            }
        )
    )
    (root / "not-k8s.yaml").write_text("just: a\nplain: yaml file\nlist: [1, 2, 3]\n")
    return root


def test_configmaps_secrets_and_env_values_are_scanned(tree: Path) -> None:
    rc, doc, err = scan(str(tree), "--show-secrets")
    assert rc == 1, err
    found = {(f["kind"], f["name"], f.get("key"), f["secret"]) for f in doc["findings"]}
    assert ("ConfigMap", "app-config", "GITHUB_TOKEN", CM_TOKEN) in found
    assert ("ConfigMap", "app-config", "application.properties", DB_PASSWORD) in found
    assert ("Secret", "api-creds", "token", SECRET_TOKEN) in found
    assert ("Deployment", "web", "web.env.API_TOKEN", ENV_TOKEN) in found
    assert ("CronJob", "nightly", "backup.env.GH_TOKEN", CRON_TOKEN) in found
    by_key = {f.get("key"): f for f in doc["findings"] if f["rule_id"] != "k8s.secret-manifest"}
    assert by_key["application.properties"]["line"] == 3  # the line within the value
    assert by_key["GITHUB_TOKEN"]["namespace"] == "prod"
    assert by_key["GITHUB_TOKEN"]["source"] == "k8s"
    assert by_key["GITHUB_TOKEN"]["document"] == 1
    assert by_key["token"]["document"] == 2
    assert doc["stats"]["objects_scanned"] == 4  # ConfigMap, Secret, Deployment, CronJob
    assert not any(f["secret"] == "changeme" for f in doc["findings"])


def test_a_committed_secret_manifest_is_reported_itself(tree: Path) -> None:
    rc, doc, _ = scan(str(tree / "base" / "configmap.yaml"))
    assert rc == 1
    manifest = [f for f in doc["findings"] if f["rule_id"] == "k8s.secret-manifest"]
    assert [(f["name"], f["key"]) for f in manifest] == [("api-creds", "token")]
    assert manifest[0]["severity"] == "high"
    assert "base64 is not encryption" in manifest[0]["description"]
    assert SECRET_TOKEN not in json.dumps(doc)  # no --show-secrets: previews only


def test_kustomize_output_on_stdin(tree: Path) -> None:
    rendered = (tree / "base" / "configmap.yaml").read_text()
    rc, doc, err = scan("-", input=rendered)
    assert rc == 1, err
    assert {f["path"] for f in doc["findings"]} == {"-"}
    assert any(f.get("key") == "GITHUB_TOKEN" for f in doc["findings"])


def _chart(root: Path) -> Path:
    chart = root / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(f"image: demo\napiToken: {token('ghp', 410)}\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n"
        "data:\n  API_TOKEN: {{ .Values.apiToken | quote }}\n"
    )
    return chart


def test_helm_chart_without_helm_is_scanned_raw(tmp_path: Path) -> None:
    chart = _chart(tmp_path)
    env = {"PATH": str(tmp_path / "empty-bin") + os.pathsep + "/usr/bin:/bin"}
    (tmp_path / "empty-bin").mkdir()
    rc, doc, err = scan(str(tmp_path), env=env)
    assert rc == 1, err
    assert [f["path"] for f in doc["findings"]] == [str(chart / "values.yaml")]
    assert doc["stats"]["skipped"]["chart_not_rendered"] == 1


def test_helm_chart_is_rendered_when_helm_is_present(tmp_path: Path) -> None:
    """With a `helm` on PATH the chart is rendered with `helm template` and the output
    scanned as manifests. helm itself cannot be installed here: a stand-in executable
    prints what `helm template` prints for this chart, and records its arguments."""
    chart = _chart(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_file = tmp_path / "helm-args"
    rendered = (
        "---\n# Source: demo/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\n"
        f'metadata:\n  name: sentinel-scan-cfg\ndata:\n  API_TOKEN: "{token("ghp", 410)}"\n'
    )
    helm = bin_dir / "helm"
    helm.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(args_file)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        f"sys.stdout.write({rendered!r})\n"
    )
    helm.chmod(helm.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    rc, doc, err = scan(str(tmp_path), env=env)
    assert rc == 1, err
    assert args_file.read_text() == f"template sentinel-scan {chart}"
    [f] = doc["findings"]
    assert (f["kind"], f["name"], f["key"]) == ("ConfigMap", "sentinel-scan-cfg", "API_TOKEN")
    assert f["path"] == f"{chart} (helm template)"


# -- bad input ------------------------------------------------------------------------------------


BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

MERGE_BOMB = "a: &a {x: 1}\n" + "".join(
    f"m{i}: &m{i} {{<<: [*{'a' if i == 0 else f'm{i - 1}'}, *{'a' if i == 0 else f'm{i - 1}'}], k{i}: 1}}\n"
    for i in range(40)
)


@pytest.mark.parametrize("bomb", [BOMB, MERGE_BOMB], ids=["aliases", "merge-keys"])
def test_yaml_bombs_are_refused_in_bounded_time_and_memory(
    tmp_path: Path, tree: Path, bomb: str
) -> None:
    (tree / "bomb.yaml").write_text(bomb)
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'sentinel.cli.main', 'scan', 'k8s', "
        f"{str(tree)!r}, '-f', 'json'], capture_output=True, text=True, timeout=120)\n"
        "print(p.returncode)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(p.stderr)\n"
        "sys.stdout.write(p.stdout)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180)
    rc_line, rss_line, report = res.stdout.split("\n", 2)
    assert int(rc_line) == 2
    assert int(rss_line) < 300 * 1024
    assert "bomb.yaml: document 1: aliases expand to more than" in res.stderr
    assert "Traceback" not in res.stderr
    doc = json.loads(report)  # the other files were still scanned
    assert any(f.get("key") == "GITHUB_TOKEN" for f in doc["findings"])


def test_malformed_and_invalid_input_name_the_object_and_go_on(tree: Path) -> None:
    (tree / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n")
    (tree / "badb64.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: x}\n"
        "data:\n  key: '%%% not base64 %%%'\n"
    )
    rc, doc, err = scan(str(tree))
    assert rc == 2
    lines = err.strip().splitlines()
    assert any("broken.yaml: not valid YAML (line" in ln for ln in lines)
    assert any("Secret x/bad: data 'key' is not valid base64" in ln for ln in lines)
    assert all(ln.startswith("sentinel: error: ") for ln in lines)
    assert any(f.get("key") == "GITHUB_TOKEN" for f in doc["findings"])  # the rest went on


def test_a_50_mb_value_is_scanned(tmp_path: Path) -> None:
    leak = token("ghp", 420)
    filler = "x" * 1000 + "\n"
    value = filler * 50_000 + f"token={leak}\n"
    cm = tmp_path / "big.yaml"
    cm.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  huge.txt: |\n"
        + "".join("    " + line + "\n" for line in value.splitlines())
    )
    rc, doc, err = scan(str(cm), "--max-file-size", "100MB")
    assert rc == 1, err
    [f] = doc["findings"]
    assert f["line"] == 50_001


def test_nothing_to_scan_is_a_usage_error() -> None:
    res = run_cli("scan", "k8s")
    assert res.returncode == 2
    assert "give manifests to scan" in res.stderr
    res = run_cli("scan", "k8s", "/no/such/dir")
    assert res.returncode == 2
    assert "no such file or directory" in res.stderr
