"""CrossGuard policy pack: the cnplatform guarantees on any stack.

    pulumi preview --policy-pack policy/          # locally, against any stack
    pulumi policy publish policy/                 # org-wide enforcement (Pulumi Cloud)

The policies and the pure checks they wrap live in ``cnplatform_policy.py`` (tests call them).
"""
from cnplatform_policy import PACK_NAME, POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
