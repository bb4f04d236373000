"""The wire protocol shared by the controller and the listener agent."""
