// placeholder: replace
