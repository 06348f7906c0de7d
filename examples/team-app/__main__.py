"""Pulumi entry point of team-app: settings from this stack's config, then the program in team_app.py."""
import pulumi
from team_app import deploy, settings_from_config

for name, value in deploy(settings_from_config(pulumi.Config())).items():
    pulumi.export(name, value)
