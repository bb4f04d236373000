# Switches the lab's tests and demos flip to see failures handled.
{
  # roles whose activation script fails (the deploy must roll them back)
  failActivationRoles = [ ];
  # roles whose services come up "failed" (the health gate must catch it)
  failServiceRoles = [ ];
}
