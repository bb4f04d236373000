# How `services.hlplay-listener` options become `hlplay listen` arguments.
#
# Plain Nix with no nixpkgs, so that the module and its tests share one table:
# an option is passed on as its flag; a list repeats the flag once per item;
# true passes a switch alone, false leaves it out; null (the default of most
# options) leaves the flag out, and with it the listener's own default.
let
  flags = {
    hostname = "--hostname";
    tier = "--tier";
    roles = "--role";
    natsUrls = "--nats-url";
    nkeyFile = "--nkey-file";
    flakeUrl = "--flake";
    profile = "--profile";
    toplevelAttr = "--toplevel-attr";
    executor = "--executor";
    timeout = "--timeout";
    subjectHost = "--subject-host";
    subjectTier = "--subject-tier";
    subjectRole = "--subject-role";
    discoverSubject = "--discover-subject";
    factsSubject = "--facts-subject";
    confirmSubject = "--confirm-subject";
    stateDir = "--state-dir";
    diskPaths = "--disk-path";
    progressInterval = "--progress-interval";
    keepGenerations = "--keep-generations";
    logLevel = "--log-level";
    trustedKeysFile = "--trusted-keys";
    signingSeedFile = "--signing-seed";
    allowUnsigned = "--accept-unsigned";
  };

  # toString 0.5 is "0.500000"; toJSON gives the short form.
  render = value:
    if builtins.isString value then value
    else if builtins.isFloat value then builtins.toJSON value
    else toString value;

  argsFor = name: value:
    if value == null || value == false then [ ]
    else if value == true then [ flags.${name} ]
    else if builtins.isList value then builtins.concatMap (item: [ flags.${name} (render item) ]) value
    else [ flags.${name} (render value) ];
in
{
  inherit flags;

  # Options of the module that are not `hlplay listen` flags.
  # trustedKeys reaches the listener as a --trusted-keys file the module writes.
  nonFlagOptions = [ "enable" "package" "extraArgs" "trustedKeys" ];

  # Quotes arguments for a systemd Exec* line: JSON string quoting (which
  # systemd's parser reads back), with % and $ doubled so that systemd expands
  # neither specifiers nor variables in them.
  execArgs = args: builtins.concatStringsSep " "
    (map (arg: builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON arg)) args);

  # The argument vector after `hlplay`, from an attribute set of option values.
  args = cfg: [ "listen" ]
    ++ builtins.concatMap (name: argsFor name (cfg.${name} or null)) (builtins.attrNames flags);
}
