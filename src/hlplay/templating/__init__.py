"""Sandboxed Jinja2 with Ansible's rules: the templar (``templar.py``) and its filters.

Below the playbook loader, the modules and the engine, which all template, so
none of them has to import another for it. Importing this package loads no
Jinja2; ``templar`` does.
"""
