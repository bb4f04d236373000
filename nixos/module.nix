# services.hlplay-listener: the hlplay listener agent on a NixOS host.
#
# The listener subscribes to its NATS subjects (deploy.<tier>.<hostname>,
# deploy.<tier>.all, deploy.<tier>.role.<role>, deploy.discover) and runs
# deploy requests through hlplay's one host-side pipeline (the `nix`
# executor): build <flakeUrl>?ref=<revision>#<hostname>, diff its closure,
# activate, health gate, confirm or roll back.
#
# Every option below except enable, package, extraArgs and trustedKeys (written
# to the file --trusted-keys names) is one flag of `hlplay listen`; the table
# is ./flags.nix, which the tests check against the real command line.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.hlplay-listener;
  listen = import ./flags.nix;
  inherit (lib) mkOption types;

  # Host, tier and role names become NATS subject tokens.
  token = types.strMatching "[A-Za-z0-9_-]+";
  nullOrStr = types.nullOr types.str;
  # An NKey user or server public key (the listener checks the checksum too).
  publicKey = types.strMatching "[UN][A-Z2-7]{55}";

  stateDir = "/var/lib/hlplay-listener";

  # Where activation runs decides how tight the sandbox can be.
  #
  # The nix executor activates from this service (and its magic-rollback
  # watchdog rolls back from it): activation writes /etc, /boot, /var, home
  # directories, sysctls and setuid wrappers, so those protections must stay
  # off for it. Only `noop`, which changes nothing, gets the strict sandbox.
  activatesInService = cfg.executor == "nix";

  # Public keys, not secrets: a file in the store is fine for them.
  trustedKeysFile =
    if cfg.trustedKeys != [ ] then
      builtins.toFile "hlplay-trusted-deployers" (builtins.concatStringsSep "\n" cfg.trustedKeys + "\n")
    else cfg.trustedKeysFile;
  hasTrust = cfg.trustedKeys != [ ] || cfg.trustedKeysFile != null;

  # Seeds are handed over with LoadCredential: they stay readable by root
  # only, wherever the administrator keeps them, and never enter the store.
  args =
    listen.args (cfg // {
      nkeyFile = null;
      signingSeedFile = null;
      inherit trustedKeysFile stateDir;
    })
    ++ cfg.extraArgs;
  secretPath = name: file: {
    assertion = lib.hasPrefix "/" file && !(lib.hasPrefix builtins.storeDir file);
    message = "services.hlplay-listener.${name} must be an absolute path outside the Nix store (the store is world-readable).";
  };
  # %d is the unit's credentials directory: the one specifier left unescaped.
  signingSeedArgs =
    if cfg.signingSeedFile == null then ""
    else " ${listen.flags.signingSeedFile} %d/signing-seed";
  execStart = "${cfg.package}/bin/hlplay ${listen.execArgs args}${signingSeedArgs} ${listen.flags.nkeyFile} %d/nkey";
in
{
  options.services.hlplay-listener = {
    enable = lib.mkEnableOption "the hlplay listener, which deploys this host on NATS requests";

    package = mkOption {
      type = types.package;
      description = "The hlplay package (the flake's `packages.<system>.default`).";
    };

    hostname = mkOption {
      type = token;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "Host name in subjects and replies; also the flake's `nixosConfigurations` attribute.";
    };

    tier = mkOption {
      type = token;
      example = "test";
      description = "The host's tier (test, prod…): it listens on `deploy.<tier>.*`.";
    };

    roles = mkOption {
      type = types.listOf token;
      default = [ ];
      example = [ "web" "db" ];
      description = "Roles: the host also listens on `deploy.<tier>.role.<role>` for each.";
    };

    natsUrls = mkOption {
      type = types.nonEmptyListOf types.str;
      example = [ "nats://nats.example.org:4222" ];
      description = "NATS server URLs, tried in turn.";
    };

    nkeyFile = mkOption {
      type = types.str;
      example = "/run/secrets/hlplay-listener.seed";
      description = ''
        NKey seed file of this host's NATS user (`hlplay keys new <host>`).
        A path as a string, so that the secret is not copied into the Nix store.
      '';
    };

    flakeUrl = mkOption {
      type = types.str;
      example = "git+https://git.example.org/fleet.git";
      description = "The configuration flake; a request's revision is added as `?ref=` or `?rev=`.";
    };

    profile = mkOption {
      type = nullOrStr;
      default = null;
      description = "System profile (null: the listener's default, /nix/var/nix/profiles/system).";
    };

    toplevelAttr = mkOption {
      type = nullOrStr;
      default = null;
      example = "nixosConfigurations.{host}.config.system.build.toplevel";
      description = "Flake attribute of the system to build (null: the listener's default).";
    };

    executor = mkOption {
      type = types.enum [ "nix" "noop" ];
      default = "nix";
      description = ''
        What performs a request: `nix`, the one pipeline every hlplay host
        runs (build, closure diff, activation, health gate, magic rollback);
        `noop` changes nothing (tests, benchmarks). With `nix` the service
        runs with fewer file system protections (see the module source):
        activation happens from it.
      '';
    };

    timeout = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 1800;
      description = "Seconds after which a deploy that hangs is ended (null: the listener's default).";
    };

    subjectHost = mkOption {
      type = nullOrStr;
      default = null;
      example = "deploy.<tier>.<hostname>";
      description = "Subject template for this host (null: the default shown).";
    };

    subjectTier = mkOption {
      type = nullOrStr;
      default = null;
      example = "deploy.<tier>.all";
      description = "Subject template for the whole tier (null: the default shown).";
    };

    subjectRole = mkOption {
      type = nullOrStr;
      default = null;
      example = "deploy.<tier>.role.<role>";
      description = "Subject template for each role (null: the default shown).";
    };

    discoverSubject = mkOption {
      type = nullOrStr;
      default = null;
      example = "deploy.discover";
      description = "Discovery subject (null: the default shown).";
    };

    factsSubject = mkOption {
      type = nullOrStr;
      default = null;
      example = "hlplay.facts.<tier>.<hostname>";
      description = "Subject of read-only fact queries (null: the default shown).";
    };

    confirmSubject = mkOption {
      type = nullOrStr;
      default = null;
      example = "hlplay.confirm.<tier>.<hostname>";
      description = "Subject on which the controller confirms a deploy (null: the default shown).";
    };

    diskPaths = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/" "/nix" "/var" ];
      description = "File systems whose usage facts report (empty: the listener's default, /).";
    };

    progressInterval = mkOption {
      type = types.nullOr types.number;
      default = null;
      example = 0.5;
      description = "Least seconds between two progress replies (null: the listener's default).";
    };

    keepGenerations = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 10;
      description = ''
        Generations of the system profile kept after a switch, at least 2; the
        booted and the running one are kept as well (null: the listener's
        default, 10).
      '';
    };

    logLevel = mkOption {
      type = types.nullOr (types.enum [ "debug" "info" "warning" "error" ]);
      default = null;
      description = "Log level (null: the listener's default).";
    };

    trustedKeysFile = mkOption {
      type = nullOrStr;
      default = null;
      example = "/etc/hlplay/prod.deployers";
      description = ''
        File of the deployer public keys (`U…`, one a line, `#` comments) this
        listener accepts signed requests from: `<tier>.deployers` from
        `hlplay nats config --trust-dir DIR`. Not a secret. This or
        `trustedKeys` must be set unless `allowUnsigned` is: requests are
        signed and checked by default.
      '';
    };

    trustedKeys = mkOption {
      type = types.listOf publicKey;
      default = [ ];
      example = [ "UDWYH6OFUG2OKKHO5YO6VGAHDJHDG2GPQLM7DWAHCGFOA5WHM7PYVKWK" ];
      description = ''
        The same as `trustedKeysFile`, given inline (the module writes the
        file). Set one of the two, not both.
      '';
    };

    signingSeedFile = mkOption {
      type = nullOrStr;
      default = null;
      example = "/run/secrets/hlplay-listener-signing.seed";
      description = ''
        NKey seed this listener signs its responses with (null: the seed of
        `nkeyFile`, so the controller checks responses against the host's NATS
        user key). When set, give the controller its public key as the host's
        `hlplay_listener_key` variable. A path as a string, so that the secret
        is not copied into the Nix store.
      '';
    };

    allowUnsigned = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Also accept requests that carry no signature (homelab-deploy clients).
        Anyone who may publish to this host's subjects can then deploy it: the
        NATS server's authorization is the only guard left. The listener logs
        that it runs so at start.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Further arguments for `hlplay listen`.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      (secretPath "nkeyFile" cfg.nkeyFile)
      {
        assertion = hasTrust || cfg.allowUnsigned;
        message = "services.hlplay-listener: set trustedKeysFile or trustedKeys (the deployer keys this host accepts requests from; `hlplay nats config --trust-dir`), or allowUnsigned = true to accept unsigned requests.";
      }
      {
        assertion = !(cfg.trustedKeys != [ ] && cfg.trustedKeysFile != null);
        message = "services.hlplay-listener: set trustedKeys or trustedKeysFile, not both.";
      }
    ] ++ lib.optional (cfg.signingSeedFile != null) (secretPath "signingSeedFile" cfg.signingSeedFile);

    systemd.services.hlplay-listener = {
      description = "hlplay listener: deploys this host on NATS requests";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];

      # A switch must not restart or stop the listener that runs it: that
      # would kill the deploy before the final status is sent. A new listener
      # takes over at the next restart or boot. nixpkgs' system.autoUpgrade
      # service says the same.
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;

      # A unit's PATH holds only what is listed here. Everything the
      # pipeline runs: nix and nix-env, sh (its small state scripts),
      # systemd-run (activation and the magic-rollback watchdog run in
      # transient units of their own, outside this service's cgroup; setsid
      # where there is no systemd), systemctl, timeout, readlink, stat, find
      # and grep (facts), git and ssh (fetches). tests/agent/test_minimal_path.py
      # runs a full deploy with exactly this PATH.
      path = [
        config.nix.package
        config.systemd.package # systemd-run, systemctl
        pkgs.bash # sh
        pkgs.util-linux # setsid
        pkgs.coreutils
        pkgs.findutils
        pkgs.gnugrep
        pkgs.git # flake fetches
        pkgs.openssh # git+ssh flake URLs
      ];

      environment = {
        # Flake fetches cache under $HOME; keep that in the state directory.
        HOME = stateDir;
        # Builds run in nix-daemon's sandbox, not in this service.
        NIX_REMOTE = "daemon";
      };

      serviceConfig =
        {
          ExecStart = execStart;
          LoadCredential = [ "nkey:${cfg.nkeyFile}" ]
            ++ lib.optional (cfg.signingSeedFile != null) "signing-seed:${cfg.signingSeedFile}";
          Restart = "always";
          RestartSec = "5s";
          # SIGTERM to the listener alone: it stops taking requests, then
          # finishes or aborts the run in progress and sends its final
          # status. Whatever is left gets SIGKILL when the time is up.
          KillMode = "mixed";
          TimeoutStopSec = "120s";
          StateDirectory = "hlplay-listener";
          StateDirectoryMode = "0700";
          WorkingDirectory = stateDir;

          # Not DynamicUser, nor any user but root: nixos-rebuild and the nix
          # executor set the system profile and activate the system, which
          # only root may do. The protections below are the ones a root
          # deploy agent keeps.
          User = "root";

          # Holds either way: nothing a deploy does needs these.
          LockPersonality = true;
          RestrictRealtime = true;
          SystemCallArchitectures = "native";
          ProtectClock = true;
          ProtectKernelLogs = true;
          # Kernel modules are loaded by systemd-modules-load.service, a unit
          # of its own, even when activation asks for new ones.
          ProtectKernelModules = true;
          PrivateTmp = true;
          # NATS and flake fetches (inet), nix-daemon, systemd and D-Bus
          # (unix), and address lookups (netlink).
          RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" "AF_NETLINK" ];
        }
        // lib.optionalAttrs (!activatesInService) {
          # The whole file system read-only, except what setting the system
          # profile writes (generation links and their GC roots) and the
          # state directory (writable through StateDirectory).
          ProtectSystem = "strict";
          ReadWritePaths = [ "/nix/var/nix/profiles" "/nix/var/nix/gcroots" ];
          ProtectHome = true;
          ProtectKernelTunables = true;
          ProtectControlGroups = true;
          ProtectHostname = true;
          PrivateDevices = true;
          NoNewPrivileges = true;
          RestrictSUIDSGID = true;
          RestrictNamespaces = true;
          # Python without a JIT, Nix, git and systemd-run never map memory
          # both writable and executable.
          MemoryDenyWriteExecute = true;
          SystemCallFilter = [ "@system-service" ];
          SystemCallErrorNumber = "EPERM";
          UMask = "0077";
        };
    };
  };
}
