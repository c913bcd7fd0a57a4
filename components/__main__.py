"""The component provider's entry point when the Pulumi CLI loads this folder as a
plugin (`pulumi package add ./components`; `PulumiPlugin.yaml` names the runtime)."""

from pulumi_eventcraft.provider import main

main()
