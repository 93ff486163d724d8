"""docker/: the compose file, dagster.yaml, workspace.yaml and the Helm values parse and
name only files, images, modules and variables that exist. ``docker compose config``
runs too where a Docker client with the compose plugin is installed."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from modelops.defs.keys import TAG_LANDING, TAG_TRAINING

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
SETTINGS = (REPO / "modelops" / "config" / "settings.py").read_text(encoding="utf-8")
# Images the compose file builds; the others are pulled and must name a tag or "latest".
BUILT = {
    "${MODELOPS_IMAGE:-modelops-code:latest}",
    "${MODELOPS_DAGSTER_IMAGE:-modelops-dagster:latest}",
}
# Variables read by programs other than modelops: Dagster, PostgreSQL, MinIO, boto3, HF.
FOREIGN = re.compile(r"^(DAGSTER_|POSTGRES_|MINIO_|AWS_|HF_|TRANSFORMERS_|TOKENIZERS_)")


def load(name: str):
    return yaml.safe_load((DOCKER / name).read_text(encoding="utf-8"))


def compose_variables(text: str) -> set[str]:
    """``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}``; ``$$`` escapes skipped."""
    return set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))


def test_compose_services_files_and_variables():
    text = (DOCKER / "docker-compose.yml").read_text(encoding="utf-8")
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {
        "postgres",
        "minio",
        "modelops-code",
        "dagster-webserver",
        "dagster-daemon",
        "modelops-serve",
    } <= set(services)
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        image = service["image"]
        assert image in BUILT or re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+", image), image
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), (name, source)
            elif not source.startswith("/"):
                assert source in compose["volumes"], (name, source)
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    # Every variable the file reads is documented in env.example (or set by compose).
    example = (DOCKER / "env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    assert compose_variables(text) <= documented
    # Every MODELOPS_ variable it sets is one the settings read.
    env = compose["x-modelops-env"]
    for variable in env:
        if not FOREIGN.match(variable):
            assert f'"{variable}"' in SETTINGS, variable
    # The code server and the launched runs load the definitions module that exists.
    code = services["modelops-code"]["command"]
    assert code[:3] == ["dagster", "code-server", "start"]
    assert importlib.util.find_spec(code[code.index("-m") + 1]) is not None
    assert services["modelops-serve"]["command"][:2] == ["modelops", "serve"]
    assert "MODELOPS_SERVE_TOKEN" in services["modelops-serve"]["environment"]


def test_dockerfiles_copy_only_what_exists():
    for dockerfile in DOCKER.glob("Dockerfile*"):
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), (dockerfile.name, source)
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG BASE_IMAGE=" in text and "FROM ${BASE_IMAGE}" in text
    assert "modelops.definitions" in text


def test_dagster_yaml_names_modules_variables_and_the_queue():
    config = load("dagster.yaml")
    deploy = (DOCKER / "requirements-deploy.txt").read_text(encoding="utf-8")
    compose = load("docker-compose.yml")
    env = compose["x-modelops-env"]
    for section in ("scheduler", "run_coordinator", "run_launcher", "compute_logs"):
        module = config[section]["module"]
        package = module.split(".")[0]
        if importlib.util.find_spec(package) is None:  # dagster_docker: in the images only
            assert package.replace("_", "-") in deploy, package
        else:
            assert hasattr(importlib.import_module(module), config[section]["class"])
    # Every variable the instance reads is set for the Dagster services by compose.
    variables = set(re.findall(r"env: ([A-Z0-9_]+)", (DOCKER / "dagster.yaml").read_text()))
    variables |= set(config["run_launcher"]["config"]["env_vars"])
    assert variables <= set(env)
    assert config["run_launcher"]["config"]["network"] == compose["networks"]["modelops"]["name"]
    volume = config["run_launcher"]["config"]["container_kwargs"]["volumes"][0].split(":")[0]
    assert volume == compose["volumes"]["modelops-home"]["name"]
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {limit["key"] for limit in limits} == {TAG_TRAINING, TAG_LANDING}


def test_workspace_points_at_the_code_server():
    (entry,) = load("workspace.yaml")["load_from"]
    compose = load("docker-compose.yml")
    command = compose["services"][entry["grpc_server"]["host"]]["command"]
    assert str(entry["grpc_server"]["port"]) == command[command.index("-p") + 1]


def test_helm_values_match_the_compose_deployment():
    values = yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text(encoding="utf-8"))
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert importlib.util.find_spec(args[args.index("--module-name") + 1]) is not None
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False and values["global"]["postgresqlSecretName"]
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    docker_queue = load("dagster.yaml")["run_coordinator"]["config"]
    assert queue["maxConcurrentRuns"] == docker_queue["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == docker_queue["tag_concurrency_limits"]
    secrets = {s["name"] for s in deployment["envSecrets"]}
    assert secrets <= {
        s["name"] for s in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    }


def test_docker_compose_config_where_a_client_is_installed(tmp_path):
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0
    ):
        pytest.skip("no Docker client with the compose plugin here; the YAML checks above ran")
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=x\nMINIO_ROOT_PASSWORD=y\nMODELOPS_SERVE_TOKEN=z\n")
    result = subprocess.run(
        [
            docker,
            "compose",
            "-f",
            str(DOCKER / "docker-compose.yml"),
            "--env-file",
            str(env),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
