// The eval path and its settings, without ArgumentParser: `eddy` runs it alone; every command here
// reads its options into it.
@_exported import EddyEval
