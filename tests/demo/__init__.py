"""The newcomer's path: only nova-xloud is installed; never import Nova."""
