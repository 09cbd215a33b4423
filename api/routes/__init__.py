"""HTTP routes, one module per resource. Routes parse, call the data layer, shape the reply."""
