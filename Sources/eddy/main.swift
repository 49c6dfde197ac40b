import Eddy

print("eddy")
