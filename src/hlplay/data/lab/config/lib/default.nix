{ system }:
let
  path = "/usr/bin:/bin";
  # A toy package: a store path named <pname>-<version> holding a script.
  mkPackage = { pname, version, src ? null, deps ? [ ] }:
    derivation {
      name = "${pname}-${version}";
      inherit system src deps pname version;
      builder = "/bin/sh";
      PATH = path;
      args = [ "-c" ''
        mkdir -p $out/bin $out/share
        printf '#!/bin/sh\necho "%s %s"\n' "$pname" "$version" > $out/bin/$pname
        chmod +x $out/bin/$pname
        if [ -n "$src" ]; then cp "$src" $out/share/$pname.txt; fi
        for d in $deps; do echo "$d" >> $out/share/deps; done
      '' ];
    };

  # The lab's system: a toplevel with sw (the selected packages), the
  # services it runs and a switch-to-configuration that starts and stops them.
  mkSystem = { hostname, tier, roles ? [ ], packages ? [ ], services ? [ ], failActivation ? false
             , failServices ? [ ], pkgs, revision ? "dirty", ... }:
    let
      sw = derivation {
        name = "system-path";
        inherit system;
        builder = "/bin/sh";
        PATH = path;
        pkgs = packages;
        args = [ "-c" ''
          mkdir -p $out/bin
          for p in $pkgs; do
            for b in $p/bin/*; do ln -sf $b $out/bin/; done
            echo $p >> $out/packages
          done
        '' ];
      };
      etc = derivation {
        name = "etc";
        inherit system hostname tier;
        builder = "/bin/sh";
        PATH = path;
        roles = builtins.concatStringsSep " " roles;
        args = [ "-c" ''
          mkdir -p $out/etc
          echo "$hostname" > $out/etc/hostname
          echo "tier=$tier roles=$roles" > $out/etc/hlplay-lab
        '' ];
      };
    in derivation {
      name = "nixos-system-${hostname}-lab";
      inherit system sw etc hostname;
      builder = "/bin/sh";
      PATH = path;
      services = builtins.concatStringsSep " " services;
      failServices = builtins.concatStringsSep " " failServices;
      failActivation = if failActivation then "1" else "";
      activate = ./switch-to-configuration.sh;
      args = [ "-c" ''
        mkdir -p $out/bin
        ln -s $sw $out/sw
        ln -s $etc/etc $out/etc
        echo "$services" > $out/services
        echo "$failServices" > $out/failed-services
        echo "lab" > $out/nixos-version
        { echo "#!/bin/sh"
          echo "SYSTEM=$out"
          echo "FAIL_ACTIVATION=$failActivation"
          cat $activate
        } > $out/bin/switch-to-configuration
        chmod +x $out/bin/switch-to-configuration
      '' ];
    };
in { inherit mkPackage mkSystem; }
