"""Job definitions: each chains recs library stages; reading one reads the data flow."""
