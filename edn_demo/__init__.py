"""The demo's Blender side: a mannequin scene rendered by Cycles, and the .blend that shows the demo's result.

`edn demo` (edn_engine/demo.py) runs these modules in a subprocess with the bpy module (`python -m edn_demo.scene`,
`python -m edn_demo.blend`), since the engine never imports bpy. The package is installed beside the engine, with
the add-on package whose armature projection and strip helpers it uses, so the demo runs from an installed
engine as well as from a checkout.
"""
