"""docs/configuration.md is generated from the typed config and never stale."""
import subprocess
import sys

from tests.helpers import ROOT


def test_configuration_reference_is_up_to_date():
    proc = subprocess.run([sys.executable, "scripts/gen_config_docs.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_reference_lists_every_key_with_rules_and_tier_defaults():
    text = (ROOT / "docs" / "configuration.md").read_text()
    for key in ("`clusters[].aws.public_access_cidrs`", "`clusters[].allow_world_open_control_plane`",
                "`services[].database.mysql_version`", "`services[].expose.path`", "`cicd.deploy_image`"):
        assert key in text, key
    assert "dev 1, staging 2, prod 3" in text and "An IPv4/IPv6 network in CIDR notation" in text
