"""Reporters: turn the engine's event stream into console text, JSON, JUnit …"""
