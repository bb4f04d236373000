{ lib, upstream }:
# packages from the upstream input (toolbox-lite …), then the configuration's own
(import upstream { inherit (lib) mkPackage; }) // {
  coreutils-lite = lib.mkPackage { pname = "coreutils-lite"; version = "9.4"; };
  openssl-lite = lib.mkPackage { pname = "openssl-lite"; version = "3.0.13"; };
  nginx-lite = lib.mkPackage { pname = "nginx-lite"; version = "1.24.0"; };
  postgresql-lite = lib.mkPackage { pname = "postgresql-lite"; version = "15.4"; };
  prometheus-lite = lib.mkPackage { pname = "prometheus-lite"; version = "2.45.0"; };
  node-exporter-lite = lib.mkPackage { pname = "node-exporter-lite"; version = "1.6.1"; };
  # A package whose source is a local file with a pinned hash:
  # `hlplay playbooks/update-package.yml -e package=motd -e version=…` bumps it.
  motd = import ./motd.nix { inherit lib; };
  # The same, on the web hosts only (update-package rebuilds just those).
  webui-lite = import ./webui-lite.nix { inherit lib; };
}
