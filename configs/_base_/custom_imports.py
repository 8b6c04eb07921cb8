# Loads mmbcn: registers WSConv2d / BCN (used through `norm_scheme`) and the
# built-in shapes datasets. Every mmbcn config inherits this file.
custom_imports = dict(imports=['mmbcn'], allow_failed_imports=False)
