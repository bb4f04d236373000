# What each role puts on a host: packages (by name in pkgs/) and services.
{
  base = { packages = [ "coreutils-lite" "openssl-lite" "motd" ]; services = [ "sshd" "hlplay-listener" ]; };
  web = { packages = [ "nginx-lite" "webui-lite" ]; services = [ "nginx" ]; };
  db = { packages = [ "postgresql-lite" "toolbox-lite" ]; services = [ "postgresql" ]; };
  mon = { packages = [ "prometheus-lite" "node-exporter-lite" ]; services = [ "prometheus" "node-exporter" ]; };
}
