"""hlplay: Ansible-style inventory and playbook engine for fleets of NixOS hosts."""

__version__ = "0.1.0"
