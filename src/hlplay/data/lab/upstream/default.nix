# The lab's "upstream": a package set the configuration follows through a
# `path:` flake input, as a real configuration follows nixpkgs. `hlplay lab up`
# copies it next to the configuration repository; edit a version there and
# `playbooks/flake-update.yml` moves the input.
{ mkPackage }:
{
  toolbox-lite = mkPackage { pname = "toolbox-lite"; version = "0.9.0"; };
}
