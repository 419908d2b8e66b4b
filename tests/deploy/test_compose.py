"""The production image and compose file, read (no Docker engine runs here): the services,
their start order, health checks, limits and volumes, the environment files, and the images
cross-checked against the Dockerfile's stages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.nginx import TEMPLATE, VARIABLE, render_template
from tests.support.processes import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.prod.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
APP = {"migrate", "web", "worker", "beat"}
SERVICES = APP | {"postgres", "redis", "nginx", "prometheus", "grafana", "ollama", "certbot"}
OPTIONAL = {"ollama": ["ollama"], "certbot": ["certbot"]}
LISTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)")
REQUIRED = {"SECRET_KEY", "ALLOWED_HOSTS", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def stages() -> list[tuple[str, str]]:
    """(base image, stage name) of each ``FROM`` in the Dockerfile."""
    return re.findall(r"^FROM (\S+) AS (\S+)$", DOCKERFILE.read_text(), re.MULTILINE)


def listed(path: Path) -> set[str]:
    return set(LISTED.findall(path.read_text()))


def test_the_dockerfile_builds_one_slim_non_root_image_with_a_health_check():
    text = DOCKERFILE.read_text()
    assert [name for _, name in stages()] == ["build", "runtime"]
    assert all(base.endswith("-slim") for base, _ in stages())
    runtime = text.split("AS runtime", 1)[1]
    assert "collectstatic" in text.split("AS runtime", 1)[0]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert re.search(r"^USER orchestra$", runtime, re.MULTILINE)
    assert 'CMD ["python", "-m", "orchestra.healthcheck"]' in runtime
    assert "--no-proxy-headers" in runtime and "--workers $WEB_WORKERS" in runtime
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".git", ".venv", "var/"} <= set(ignored)


def test_the_services_and_their_profiles(services):
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("profiles") == OPTIONAL.get(name), name


def test_app_services_run_the_dockerfiles_image(services):
    targets = {name for _, name in stages()}
    for name in APP:
        service = services[name]
        assert service["build"] == {"context": ".", "target": "runtime"} and "runtime" in targets
        assert service["image"] == services["web"]["image"]
        assert service["env_file"] == ".env.production"
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "orchestra.settings.production"
    # web runs the image's own command (the one tests/accounts/test_client_address.py runs).
    assert "command" not in services["web"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "orchestra", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "orchestra", "beat"]
    for name, service in services.items():
        if name not in APP:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), name  # pinned tag


def test_health_based_start_order(services):
    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert waits_for("migrate") == {"postgres": "service_healthy", "redis": "service_healthy"}
    for name in ("web", "worker", "beat"):
        assert waits_for(name) == {"migrate": "service_completed_successfully"}
    assert waits_for("nginx") == {"web": "service_healthy"}
    assert waits_for("grafana") == {"prometheus": "service_healthy"}
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert services[dep]["healthcheck"]["test"], f"{name} waits for {dep}'s health"


def test_health_checks_restart_policies_and_limits(services):
    # The image's own check asks web's port: the other app services replace or disable it.
    web_check = services["web"]["healthcheck"]["test"]
    assert web_check == ["CMD", "python", "-m", "orchestra.healthcheck"]
    assert "inspect ping" in services["worker"]["healthcheck"]["test"][1]
    for name in ("migrate", "beat", "certbot"):
        assert services[name]["healthcheck"] == {"disable": True}, name
    for name, service in services.items():
        healthcheck = service["healthcheck"]
        assert healthcheck.get("disable") or healthcheck["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert service["restart"] == ("no" if name == "migrate" else "unless-stopped"), name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[mg]", limits["memory"]), name


def test_named_volumes_are_declared_used_and_bind_mounts_exist(compose, services):
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = REPO_ROOT / source
                assert path.exists(), f"{name} mounts {source}"
            else:
                used.add(source)
    assert used == set(compose["volumes"])
    # Workers write artifacts that web serves; nginx serves what migrate copied.
    assert "media:/var/lib/orchestra/media" in services["worker"]["volumes"]
    assert "media:/var/lib/orchestra/media" in services["web"]["volumes"]
    assert "static:/srv/static" in services["migrate"]["volumes"]
    assert "static:/srv/static:ro" in services["nginx"]["volumes"]
    assert "cp -a /app/staticfiles/. /srv/static/" in services["migrate"]["command"][2]


def test_nginx_gets_exactly_the_templates_variables(services):
    nginx = services["nginx"]
    assert "./nginx/templates:/etc/nginx/templates:ro" in nginx["volumes"]
    values = {
        name: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
        for name, value in nginx["environment"].items()
    }
    rendered = render_template(values)  # refuses a missing or extra variable
    assert not VARIABLE.search(rendered) and "server web:8000;" in rendered
    assert set(VARIABLE.findall(TEMPLATE.read_text())) == set(nginx["environment"])


def test_every_interpolated_variable_is_in_the_production_env_file():
    example = REPO_ROOT / ".env.production.example"
    interpolated = set(INTERPOLATED.findall(COMPOSE.read_text()))
    assert {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "TRUSTED_PROXIES"} <= interpolated
    assert interpolated <= listed(example)
    # Set (not commented) where the stack cannot start without them.
    set_values = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example.read_text(), re.MULTILINE))
    assert set_values >= REQUIRED


def test_the_production_env_file_lists_every_variable_but_the_test_runs():
    everything = (REPO_ROOT / ".env.example").read_text()
    test_runs = everything.split("# --- Test runs", 1)[1]
    expected = listed(REPO_ROOT / ".env.example") - set(LISTED.findall(test_runs))
    assert sorted(expected ^ listed(REPO_ROOT / ".env.production.example")) == []


def test_monitoring_files_provision_prometheus_and_grafana(services):
    prometheus = yaml.safe_load((REPO_ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    (orchestra,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "orchestra"]
    assert orchestra["static_configs"][0]["targets"] == ["web:8000"]
    sources = REPO_ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml"
    (source,) = yaml.safe_load(sources.read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert (
        "ALLOWED_HOSTS=orchestra.example.com,web"
        in (REPO_ROOT / ".env.production.example").read_text()
    ), "Prometheus scrapes web by the name web"
