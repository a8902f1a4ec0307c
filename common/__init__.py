"""The project's bottom floor: names, the command-line convention, user errors, Hub ids and the
``results.json`` schema, shared by hub_cards, dataset_builder and model_training (which all
import from here; this package imports none of them)."""
