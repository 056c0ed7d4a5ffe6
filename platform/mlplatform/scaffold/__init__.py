"""Scaffold a tenant from data: a labelled table (table.py) or LETOR ranking files (letor.py).

infer.py and columns.py read a table into a plan, render.py writes it as tenant.yaml and a README.
"""

from mlplatform.scaffold.errors import ScaffoldError
from mlplatform.scaffold.letor import scaffold_letor_tenant
from mlplatform.scaffold.table import scaffold_tenant

__all__ = ["ScaffoldError", "scaffold_letor_tenant", "scaffold_tenant"]
