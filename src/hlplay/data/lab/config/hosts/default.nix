# The lab fleet: two tiers, three roles. Each host's configuration is the
# union of its roles (see roles/default.nix) on top of "base".
let
  roles = import ../roles;
  settings = import ./settings.nix;
  mk = tier: hostRoles: extra:
    let
      all = [ "base" ] ++ hostRoles;
      pick = attr: builtins.concatLists (map (r: roles.${r}.${attr}) all);
      failing = builtins.filter (r: builtins.elem r settings.failActivationRoles) hostRoles != [ ];
      failSvc = builtins.concatLists (map (r: if builtins.elem r settings.failServiceRoles then roles.${r}.services else [ ]) hostRoles);
    in {
      inherit tier;
      roles = hostRoles;
      packageNames = pick "packages";
      services = pick "services";
      failActivation = failing;
      failServices = failSvc;
    } // extra;
in {
  test-web1 = mk "test" [ "web" ] { };
  test-web2 = mk "test" [ "web" ] { };
  test-db1 = mk "test" [ "db" ] { };
  test-mon1 = mk "test" [ "mon" ] { };
  prod-web1 = mk "prod" [ "web" ] { };
  prod-db1 = mk "prod" [ "db" ] { };
  prod-mon1 = mk "prod" [ "mon" ] { };
}
