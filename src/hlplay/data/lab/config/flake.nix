{
  # The hlplay lab's configuration flake: six toy NixOS-like systems built
  # without nixpkgs, so the lab runs offline on any machine with Nix.
  description = "hlplay lab fleet";

  # The lab's upstream package set, followed the way nixpkgs is: `hlplay lab up`
  # writes the absolute path of <lab state>/upstream here and locks it
  # (flake.lock); `playbooks/flake-update.yml` moves it.
  inputs.upstream = { url = "path:@UPSTREAM@"; flake = false; };

  outputs = { self, upstream }:
    let
      # written by `hlplay lab up` (pure evaluation has no builtins.currentSystem)
      system = import ./system.nix;
      lib = import ./lib { inherit system; };
      pkgs = import ./pkgs { inherit lib upstream; };
      hosts = import ./hosts;
      mkHost = name: cfg: lib.mkSystem (cfg // {
        hostname = name;
        inherit pkgs;
        packages = map (p: pkgs.${p}) cfg.packageNames;
      });
    in {
      nixosConfigurations = builtins.mapAttrs (name: cfg: {
        config.system.build.toplevel = mkHost name cfg;
      }) hosts;
      packages.${system} = pkgs;
    };
}
