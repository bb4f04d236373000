{
  # The hlplay lab's configuration flake: six toy NixOS-like systems built
  # without nixpkgs, so the lab runs offline on any machine with Nix.
  description = "hlplay lab fleet";

  outputs = { self }:
    let
      # written by `hlplay lab up` (pure evaluation has no builtins.currentSystem)
      system = import ./system.nix;
      lib = import ./lib { inherit system; };
      pkgs = import ./pkgs { inherit lib; };
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
