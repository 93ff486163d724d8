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


class ComposeLoader(yaml.SafeLoader):
    """YAML with compose's ``!reset`` / ``!override`` merge tags (docker-compose.debian.yml)."""


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(
        _tag,
        lambda loader, node: (
            loader.construct_sequence(node)
            if isinstance(node, yaml.SequenceNode)
            else loader.construct_scalar(node)
            if isinstance(node, yaml.ScalarNode)
            else loader.construct_mapping(node)
        ),
    )


def load(name: str):
    return yaml.load((DOCKER / name).read_text(encoding="utf-8"), Loader=ComposeLoader)


def compose_variables(text: str) -> set[str]:
    """``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}``; ``$$`` escapes skipped."""
    return set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))


# The variables compose refuses to start without (``${NAME:?message}``).
REQUIRED = (
    "POSTGRES_PASSWORD",
    "MODELOPS_DB_PASSWORD",
    "S3_ADMIN_PASSWORD",
    "MODELOPS_S3_SECRET_ACCESS_KEY",
    "MODELOPS_SERVE_TOKEN",
    "DOCKER_GID",
)


def test_compose_services_files_and_variables():
    text = (DOCKER / "docker-compose.yml").read_text(encoding="utf-8")
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {
        "postgres",
        "s3",
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
            if source.startswith("${DOCKER_SOCKET"):
                continue  # the host's Docker socket (docker/env.example)
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
    for dockerfile in [*DOCKER.glob("Dockerfile*"), *(DOCKER / "debian").glob("Dockerfile*")]:
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            if line.startswith("COPY "):
                for source in [s for s in line.split()[1:-1] if not s.startswith("--")]:
                    if "--from=" in line:
                        break  # from an earlier stage of the same file
                    assert (REPO / source).exists(), (dockerfile.name, source)
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG BASE_IMAGE=" in text and "FROM ${BASE_IMAGE}" in text
    assert "modelops.definitions" in text


def test_dagster_yaml_names_modules_variables_and_the_queue():
    config = load("dagster.yaml")
    deploy = (DOCKER / "requirements-deploy.txt").read_text(encoding="utf-8")
    compose = load("docker-compose.yml")
    env = compose["x-modelops-env"]
    # A run container loads the same instance: the launcher passes it every variable the
    # file reads (DAGSTER_COMPUTE_LOG_BUCKET was missing: every run failed at its start).
    launcher_env = set(config["run_launcher"]["config"]["env_vars"])
    read = set(re.findall(r"env: ([A-Z0-9_]+)", (DOCKER / "dagster.yaml").read_text()))
    assert read <= launcher_env, read - launcher_env
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


# The keys of docker/helm/values.yaml against Dagster's chart "dagster". Written by hand
# from the chart's values.schema.json (and its templates) at dagster-io/dagster commit
# bdb8547fab497826eeec292bc160b549a0a329ef, checked on 2026-12-06 for chart 1.13.27; that commit
# predates the chart's `concurrency` and `defsStateStorage` keys (added in 2026), which these
# values do not use. Each entry: the keys the chart knows at that path. Most of these objects
# are `additionalProperties: false` in the schema (a stray key fails `helm install`); the rest
# ignore a misspelled key silently, which is as bad. Paths of list items end in "[]".
HELM_SCHEMA_COMMIT = "bdb8547fab497826eeec292bc160b549a0a329ef"
HELM_KEYS = {
    "": {
        "dagsterWebserver",
        "dagster-user-deployments",
        "postgresql",
        "generatePostgresqlPasswordSecret",
        "generateCeleryConfigSecret",
        "rabbitmq",
        "redis",
        "flower",
        "ingress",
        "imagePullSecrets",
        "computeLogManager",
        "scheduler",
        "runLauncher",
        "pythonLogs",
        "dagsterDaemon",
        "busybox",
        "migrate",
        "telemetry",
        "serviceAccount",
        "global",
        "retention",
        "additionalInstanceConfig",
    },
    "global": {
        "postgresqlSecretName",
        "dagsterHome",
        "serviceAccountName",
        "celeryConfigSecretName",
    },
    "postgresql": {
        "image",
        "enabled",
        "postgresqlHost",
        "postgresqlUsername",
        "postgresqlPassword",
        "postgresqlDatabase",
        "postgresqlParams",
        "postgresqlScheme",
        "service",
    },
    "postgresql.service": {"port"},
    "dagsterWebserver": {
        "replicaCount",
        "image",
        "nameOverride",
        "pathPrefix",
        "service",
        "workspace",
        "env",
        "envConfigMaps",
        "envSecrets",
        "deploymentLabels",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "annotations",
        "enableReadOnly",
        "dbStatementTimeout",
        "dbPoolRecycle",
        "logLevel",
        "schedulerName",
        "volumeMounts",
        "volumes",
        "initContainerResources",
    },
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "dagster-user-deployments.deployments[]": {
        "name",
        "image",
        "dagsterApiGrpcArgs",
        "codeServerArgs",
        "includeConfigInLaunchedRuns",
        "deploymentNamespace",
        "port",
        "env",
        "envConfigMaps",
        "envSecrets",
        "annotations",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "labels",
        "volumeMounts",
        "volumes",
        "schedulerName",
        "initContainers",
        "sidecarContainers",
    },
    "dagster-user-deployments.deployments[].image": {"repository", "tag", "pullPolicy"},
    "dagster-user-deployments.deployments[].includeConfigInLaunchedRuns": {"enabled"},
    "dagster-user-deployments.deployments[].env[]": {"name", "value", "valueFrom"},
    "dagster-user-deployments.deployments[].envSecrets[]": {"name", "optional"},
    "dagsterWebserver.envSecrets[]": {"name", "optional"},
    "dagsterDaemon.envSecrets[]": {"name", "optional"},
    "runLauncher": {"type", "config"},
    "runLauncher.config": {"celeryK8sRunLauncher", "k8sRunLauncher", "customRunLauncher"},
    "runLauncher.config.k8sRunLauncher": {
        "image",
        "imagePullPolicy",
        "jobNamespace",
        "loadInclusterConfig",
        "kubeconfigFile",
        "envConfigMaps",
        "envSecrets",
        "envVars",
        "volumeMounts",
        "volumes",
        "labels",
        "failPodOnRunFailure",
        "resources",
        "schedulerName",
        "securityContext",
        "runK8sConfig",
    },
    "runLauncher.config.k8sRunLauncher.envSecrets[]": {"name", "optional"},
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig",
        "podSpecConfig",
        "podTemplateSpecMetadata",
        "jobSpecConfig",
        "jobMetadata",
    },
    "dagsterDaemon": {
        "enabled",
        "image",
        "runCoordinator",
        "heartbeatTolerance",
        "env",
        "envConfigMaps",
        "envSecrets",
        "deploymentLabels",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "annotations",
        "runMonitoring",
        "runRetries",
        "sensors",
        "schedules",
        "schedulerName",
        "volumeMounts",
        "volumes",
        "initContainerResources",
    },
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config": {"queuedRunCoordinator", "customRunCoordinator"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns",
        "tagConcurrencyLimits",
        "dequeueIntervalSeconds",
        "dequeueNumWorkers",
        "dequeueUseThreads",
        "blockOpConcurrencyLimitedRuns",
    },
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[]": {
        "key",
        "value",
        "limit",
    },
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[].value": {
        "applyLimitPerUniqueValue"
    },
    # A free object in the schema; these are the keys the instance template reads.
    "dagsterDaemon.runMonitoring": {
        "enabled",
        "startTimeoutSeconds",
        "cancelTimeoutSeconds",
        "maxResumeRunAttempts",
        "pollIntervalSeconds",
        "freeSlotsAfterRunEndSeconds",
    },
    "computeLogManager": {"type", "config"},
    "computeLogManager.config": {
        "azureBlobComputeLogManager",
        "gcsComputeLogManager",
        "s3ComputeLogManager",
        "customComputeLogManager",
    },
    "computeLogManager.config.s3ComputeLogManager": {
        "bucket",
        "localDir",
        "prefix",
        "useSsl",
        "verify",
        "verifyCertPath",
        "endpointUrl",
        "skipEmptyFiles",
        "uploadInterval",
        "uploadExtraArgs",
        "showUrlOnly",
        "region",
    },
    "telemetry": {"enabled"},
}
# Kubernetes objects the chart passes through as they are: not walked further.
HELM_OPAQUE = {
    "dagster-user-deployments.deployments[].resources",
    "runLauncher.config.k8sRunLauncher.runK8sConfig.containerConfig",
    "runLauncher.config.k8sRunLauncher.runK8sConfig.podSpecConfig",
}
# The type the schema gives each scalar or list these values set.
HELM_TYPES = {
    "global.postgresqlSecretName": str,
    "generatePostgresqlPasswordSecret": bool,
    "postgresql.enabled": bool,
    "postgresql.postgresqlHost": str,
    "postgresql.postgresqlUsername": str,
    "postgresql.postgresqlDatabase": str,
    "postgresql.postgresqlScheme": str,
    "postgresql.service.port": int,
    "dagsterWebserver.replicaCount": int,
    "dagsterWebserver.envSecrets": list,
    "dagster-user-deployments.enabled": bool,
    "dagster-user-deployments.enableSubchart": bool,
    "dagster-user-deployments.deployments": list,
    "dagster-user-deployments.deployments[].name": str,
    "dagster-user-deployments.deployments[].image.repository": str,
    "dagster-user-deployments.deployments[].image.tag": str,  # quoted: "0.10" is no float
    "dagster-user-deployments.deployments[].image.pullPolicy": str,
    "dagster-user-deployments.deployments[].codeServerArgs": list,
    "dagster-user-deployments.deployments[].codeServerArgs[]": str,
    "dagster-user-deployments.deployments[].port": int,
    "dagster-user-deployments.deployments[].envSecrets": list,
    "dagster-user-deployments.deployments[].envSecrets[].name": str,
    "dagster-user-deployments.deployments[].env": list,
    "dagster-user-deployments.deployments[].env[].name": str,
    "dagster-user-deployments.deployments[].env[].value": str,
    "dagster-user-deployments.deployments[].includeConfigInLaunchedRuns.enabled": bool,
    "dagsterWebserver.envSecrets[].name": str,
    "dagsterDaemon.envSecrets[].name": str,
    "runLauncher.type": str,
    "runLauncher.config.k8sRunLauncher.envSecrets": list,
    "runLauncher.config.k8sRunLauncher.envSecrets[].name": str,
    "dagsterDaemon.enabled": bool,
    "dagsterDaemon.envSecrets": list,
    "dagsterDaemon.runCoordinator.enabled": bool,
    "dagsterDaemon.runCoordinator.type": str,
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurrentRuns": int,
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits": list,
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[].key": str,
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[].limit": int,
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits[].value"
    ".applyLimitPerUniqueValue": bool,
    "dagsterDaemon.runMonitoring.enabled": bool,
    "dagsterDaemon.runMonitoring.startTimeoutSeconds": int,
    "computeLogManager.type": str,
    "computeLogManager.config.s3ComputeLogManager.bucket": str,
    "computeLogManager.config.s3ComputeLogManager.prefix": str,
    "computeLogManager.config.s3ComputeLogManager.endpointUrl": str,
    "telemetry.enabled": bool,
}
HELM_ENUMS = {
    "runLauncher.type": {"CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"},
    "dagsterDaemon.runCoordinator.type": {"QueuedRunCoordinator", "CustomRunCoordinator"},
    "computeLogManager.type": {
        "NoOpComputeLogManager",
        "AzureBlobComputeLogManager",
        "GCSComputeLogManager",
        "S3ComputeLogManager",
        "CustomComputeLogManager",
    },
    "dagster-user-deployments.deployments[].image.pullPolicy": {"Always", "IfNotPresent", "Never"},
}
# Where docs/deploy.md says each setting lands; the test asserts each one is set there.
HELM_REQUIRED = (
    "runLauncher.config.k8sRunLauncher.runK8sConfig.containerConfig.resources.requests",
    "runLauncher.config.k8sRunLauncher.runK8sConfig.podSpecConfig.tolerations",
    "runLauncher.config.k8sRunLauncher.envSecrets",
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits",
    "computeLogManager.config.s3ComputeLogManager.endpointUrl",
    "postgresql.postgresqlScheme",
    "global.postgresqlSecretName",
    "telemetry.enabled",
)


def _walk_helm(node, path, seen):
    """Every path under `node`, with list items as "[]", checked against HELM_KEYS."""
    seen[path] = seen.get(path, []) + [node]
    if path in HELM_OPAQUE:
        return
    if isinstance(node, dict):
        assert path in HELM_KEYS, f"{path or '(top)'}: not a place these values may set keys"
        unknown = set(node) - HELM_KEYS[path]
        assert not unknown, f"{path or '(top)'}: keys the chart does not know: {unknown}"
        for key, value in node.items():
            _walk_helm(value, f"{path}.{key}" if path else key, seen)
    elif isinstance(node, list):
        for item in node:
            _walk_helm(item, f"{path}[]", seen)
    else:
        assert path in HELM_TYPES, f"{path}: a scalar the schema check did not cover"


def _helm_get(values, dotted):
    node = values
    for key in dotted.split("."):
        assert isinstance(node, dict) and key in node, f"{dotted}: not set (at {key})"
        node = node[key]
    return node


def test_helm_values_keys_and_types_follow_the_chart_schema():
    values = yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text(encoding="utf-8"))
    seen = {}
    _walk_helm(values, "", seen)
    for path, nodes in seen.items():
        expected = HELM_TYPES.get(path)
        for node in nodes:
            if expected is not None:
                # bool is an int in Python; the schema keeps them apart.
                ok = isinstance(node, expected) and (expected is bool or not isinstance(node, bool))
                assert ok, f"{path}: {node!r} is not {expected.__name__}"
            if path in HELM_ENUMS:
                assert node in HELM_ENUMS[path], f"{path}: {node!r}"
    for dotted in HELM_REQUIRED:
        assert _helm_get(values, dotted) not in (None, [], {}), dotted
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    tolerations = launcher["runK8sConfig"]["podSpecConfig"]["tolerations"]
    assert {t["key"] for t in tolerations} == {"nvidia.com/gpu"}
    # The schema's conditionals: the type names its config block.
    assert "k8sRunLauncher" in values["runLauncher"]["config"]
    assert "queuedRunCoordinator" in values["dagsterDaemon"]["runCoordinator"]["config"]
    assert "s3ComputeLogManager" in values["computeLogManager"]["config"]
    for limit in _helm_get(
        values, "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits"
    ):
        assert isinstance(limit.get("value"), (str, dict, type(None))), limit
    # With includeConfigInLaunchedRuns the chart gives the deployment's resources to every
    # run pod, replacing runK8sConfig.containerConfig.resources (dagster-k8s merges the code
    # location's container context over the launcher's key by key), and it does not pass
    # the deployment's nodeSelector, affinity or tolerations: those place the code server.
    for deployment in values["dagster-user-deployments"]["deployments"]:
        if deployment.get("includeConfigInLaunchedRuns", {}).get("enabled"):
            assert "resources" not in deployment, deployment["name"]
    # Every values path docs/deploy.md names is set in the values.
    docs = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    named = set(
        re.findall(
            r"`((?:runLauncher|dagsterDaemon|computeLogManager|postgresql"
            r"|global|dagster-user-deployments)\.[\w.-]+)`",
            docs,
        )
    )
    assert "runLauncher.config.k8sRunLauncher.runK8sConfig.podSpecConfig.tolerations" in named
    for dotted in named:
        _helm_get(values, dotted)


def test_docker_compose_config_where_a_client_is_installed(tmp_path):
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0
    ):
        pytest.skip("no Docker client with the compose plugin here; the YAML checks above ran")
    env = tmp_path / ".env"
    env.write_text("".join(f"{name}=x\n" for name in REQUIRED))
    for files in (["docker-compose.yml"], ["docker-compose.yml", "docker-compose.debian.yml"]):
        command = [docker, "compose"]
        for name in files:
            command += ["-f", str(DOCKER / name)]
        result = subprocess.run(
            [*command, "--env-file", str(env), "config", "--quiet"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


def test_compose_hardening():
    """Loopback ports, pinned pulled images, the Docker socket on the daemon only, the
    platform on its own PostgreSQL and S3 users, and the required secrets."""
    text = (DOCKER / "docker-compose.yml").read_text(encoding="utf-8")
    compose = load("docker-compose.yml")
    services = compose["services"]
    assert set(re.findall(r"\$\{([A-Z0-9_]+):\?", text)) == set(REQUIRED)
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        if service["image"] not in BUILT:
            assert not service["image"].endswith(":latest"), (name, service["image"])
        sockets = [v for v in service.get("volumes", []) if "docker.sock" in v]
        assert bool(sockets) == (name == "dagster-daemon"), name
    env = compose["x-modelops-env"]
    assert "POSTGRES" not in env["DAGSTER_PG_USER"] and "MODELOPS_DB_USER" in env["DAGSTER_PG_USER"]
    assert "MODELOPS_DB_USER" in env["MODELOPS_DATABASE_URL"]
    assert "MODELOPS_S3_ACCESS_KEY_ID" in env["AWS_ACCESS_KEY_ID"]
    assert "ADMIN" not in env["AWS_SECRET_ACCESS_KEY"]
    for service in (
        "modelops-code",
        "dagster-webserver",
        "dagster-daemon",
        "modelops-serve",
        "postgres",
        "s3",
    ):
        assert "healthcheck" in services[service], service
    assert services["modelops-code"]["healthcheck"]["test"][1:4] == [
        "dagster",
        "api",
        "grpc-health-check",
    ]


def test_images_run_as_a_user_and_install_the_lock():
    for dockerfile in [*DOCKER.glob("Dockerfile*"), *(DOCKER / "debian").glob("Dockerfile*")]:
        lines = dockerfile.read_text(encoding="utf-8").splitlines()
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), dockerfile.name
        assert any(line.startswith("ARG BASE_IMAGE=") for line in lines), dockerfile.name
        for line in lines:
            if line.startswith("ARG BASE_IMAGE="):
                assert re.search(r":[^:]*\d", line), line  # a tag naming a version
    for name in ("Dockerfile", "Dockerfile.dagster"):
        text = (DOCKER / name).read_text(encoding="utf-8")
        assert "--require-hashes" in text
    lock = (DOCKER / "requirements.lock").read_text(encoding="utf-8")
    pinned = set(re.findall(r"^([a-z0-9._-]+)==", lock, re.M))
    assert {"dagster", "transformers", "peft", "evidently", "scipy", "dagster-docker"} <= pinned
    assert not pinned & {"pytest", "hypothesis", "moto", "ruff", "torch"}
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".modelops", "data", "docker/.env"} <= set(ignored)


def test_debian_override_replaces_only_the_pulled_servers():
    override = load("docker-compose.debian.yml")["services"]
    assert set(override) == {"postgres", "s3", "s3-init"}
    for name in ("postgres", "s3"):
        build = override[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file()
