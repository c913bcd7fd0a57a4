"""`python -m pulumi_eventcraft`: the component provider (see `pulumi_eventcraft.provider`)."""

from pulumi_eventcraft.provider import main

if __name__ == "__main__":
    main()
