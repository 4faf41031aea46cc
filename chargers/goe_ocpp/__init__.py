"""go-eCharger over OCPP 1.6-J: divert is the charger's central system (see README)."""
