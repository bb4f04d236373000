{ lib }:
let
  version = "1.0";
in
lib.mkPackage {
  pname = "webui-lite";
  inherit version;
  src = builtins.path {
    path = ../src/webui-${version}.txt;
    name = "webui-${version}.txt";
    recursive = false;
    sha256 = "1zpsf4kkknzvw3g1d2is562ka69a3camq8sr7b1ibcv6kr91qglb";
  };
}
