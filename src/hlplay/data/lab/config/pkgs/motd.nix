{ lib }:
let
  version = "1.0";
in
lib.mkPackage {
  pname = "motd";
  inherit version;
  src = builtins.path {
    path = ../src/motd-${version}.txt;
    name = "motd-${version}.txt";
    recursive = false;
    sha256 = "0ib5gj6y73r42vzkd57grgig3i0l31qngkcqicnqb7i7b75s4b5s";
  };
}
