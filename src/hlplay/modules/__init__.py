"""Task modules: one file each; :mod:`hlplay.modules.registry` finds them."""
