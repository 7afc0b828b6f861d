"""The OpenGL side: a headless moderngl context, the shaders, and a renderer that draws one view.

`Renderer(size)` owns one context (one per worker process). `set_mesh` uploads an object once;
`render(latent)` draws the 3DIEBench scene for one latent and returns the pixels. Lighting is
Blinn-Phong in linear RGB (sRGB in and out): ambient + a fixed white "sun" + the coloured spot
light, whose cone has a soft edge and casts a shadow (a shadow map drawn from the light).
Anti-aliasing: 4x MSAA, resolved into a plain framebuffer before reading back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import math
import os
import sys

import numpy as np

from keras_eqssl.data.render import scene

# Debian/Ubuntu package that provides each library moderngl's EGL backend loads.
GL_LIBRARIES = {"EGL": "libegl1", "GL": "libgl1 libgl1-mesa-dri", "gbm": "libgbm1"}

AMBIENT = 0.35  # soft sky light, linear
SUN_INTENSITY = 0.75
SUN_DIRECTION = (0.3, -0.5, 0.81)  # towards the sun: above, a little to the camera's side
SPOT_INTENSITY = 2.2


class GLUnavailableError(RuntimeError):
    """No OpenGL context could be made (the message says which system library is missing)."""


def missing_gl_libraries() -> list[str]:
    """Names of the GL libraries (EGL, GL, gbm) that the dynamic loader cannot find."""
    return [name for name in GL_LIBRARIES if ctypes.util.find_library(name) is None]


DRI_DIRS = ("/usr/lib/x86_64-linux-gnu/dri", "/usr/lib/aarch64-linux-gnu/dri", "/usr/lib64/dri", "/usr/lib/dri")


def _isolate_mesa_from_tensorflow() -> None:
    """Preloads Mesa's driver with RTLD_DEEPBIND so it binds to its own LLVM, not TensorFlow's.

    TensorFlow loads its library with RTLD_GLOBAL, and that library carries LLVM symbols (XLA).
    Mesa's llvmpipe, loaded later, would resolve its LLVM calls to TensorFlow's copies and crash
    (a segfault on the first draw). `import keras_eqssl` imports TensorFlow, so this runs before
    every context is made; loading the driver first with DEEPBIND makes it prefer its own deps.
    Does nothing if the driver is not found (another GL implementation, e.g. a GPU's).
    """
    if "tensorflow" not in sys.modules:
        return
    dirs = [d for d in os.environ.get("LIBGL_DRIVERS_PATH", "").split(":") if d] + list(DRI_DIRS)
    for path in (p for d in dirs for p in sorted(glob.glob(os.path.join(d, "swrast_dri.so")))):
        try:
            ctypes.CDLL(path, mode=os.RTLD_DEEPBIND | os.RTLD_LOCAL)
        except OSError:
            continue
        return


def _standalone_context(backend: str | None):
    """moderngl's headless context factory (a seam: tests replace it to simulate a machine without GL)."""
    import moderngl

    kwargs = {"backend": backend} if backend else {}
    return moderngl.create_standalone_context(require=330, **kwargs)


def create_context():
    """A headless OpenGL 3.3 context: EGL first (no display needed), then the platform default.

    Raises:
        GLUnavailableError: naming the missing system libraries and the packages that provide them.
    """
    _isolate_mesa_from_tensorflow()
    errors = []
    for backend in ("egl", None):
        try:
            return _standalone_context(backend)
        except Exception as err:  # moderngl/glcontext raise plain Exceptions (and ImportError, OSError)
            errors.append(f"{backend or 'default'}: {type(err).__name__}: {err}")
    missing = missing_gl_libraries()
    if missing:
        libs = ", ".join(f"lib{name}" for name in missing)
        pkgs = " ".join(GL_LIBRARIES[name] for name in missing)
        hint = f"missing system libraries: {libs}; on Debian/Ubuntu: apt-get install {pkgs}"
    else:
        hint = (
            "the GL libraries were found but no context could be made; a headless machine needs Mesa's "
            "EGL and software driver (apt-get install libegl1 libgl1-mesa-dri libgbm1)"
        )
    raise GLUnavailableError(f"cannot create an OpenGL context for rendering ({hint}). Tried: {'; '.join(errors)}")


_VERTEX = """
#version 330
uniform mat4 u_model;
uniform mat4 u_viewproj;
uniform mat4 u_light_viewproj;
uniform vec3 u_tint;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_color;
out vec4 v_light;
void main() {
    vec4 world = u_model * vec4(in_pos, 1.0);
    v_world = world.xyz;
    v_normal = mat3(u_model) * in_normal;
    v_color = pow(in_color * u_tint, vec3(2.2));
    // normal offset: look the shadow up a little off the surface (no acne on the object)
    v_light = u_light_viewproj * vec4(world.xyz + 0.012 * normalize(v_normal), 1.0);
    gl_Position = u_viewproj * world;
}
"""

_FRAGMENT = """
#version 330
uniform vec3 u_eye;
uniform vec3 u_spot_pos;
uniform vec3 u_spot_dir;
uniform vec3 u_spot_color;
uniform float u_cos_outer;
uniform float u_cos_inner;
uniform vec3 u_sun_dir;
uniform float u_sun;
uniform float u_ambient;
uniform float u_shininess;
uniform float u_specular;
uniform sampler2DShadow u_shadow;
in vec3 v_world;
in vec3 v_normal;
in vec3 v_color;
in vec4 v_light;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    vec3 v = normalize(u_eye - v_world);
    if (dot(n, v) < 0.0) n = -n;  // two-sided: meshes from files may have inconsistent winding
    vec3 l = normalize(u_spot_pos - v_world);
    float cone = smoothstep(u_cos_outer, u_cos_inner, dot(-l, u_spot_dir));
    vec3 p = v_light.xyz / v_light.w * 0.5 + 0.5;
    float lit = texture(u_shadow, vec3(p.xy, p.z - 0.0005));
    vec3 h = normalize(l + v);
    float spot = cone * lit * max(dot(n, l), 0.0);
    float spec = cone * lit * u_specular * pow(max(dot(n, h), 0.0), u_shininess);
    float sun = u_sun * max(dot(n, u_sun_dir), 0.0);
    vec3 c = v_color * (u_ambient + sun + u_spot_color * spot) + u_spot_color * spec;
    f_color = vec4(pow(clamp(c, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
}
"""

_DEPTH_VERTEX = """
#version 330
uniform mat4 u_mvp;
in vec3 in_pos;
void main() { gl_Position = u_mvp * vec4(in_pos, 1.0); }
"""

_DEPTH_FRAGMENT = """
#version 330
void main() {}
"""

VERTEX_FORMAT = "3f 3f 3f"  # position, normal, sRGB colour: (N, 9) float32, three rows per triangle
_FLOOR_HALF = 30.0


def _mat(m: np.ndarray) -> bytes:
    """A row-major numpy (4, 4) matrix as the column-major bytes GLSL expects."""
    return np.ascontiguousarray(np.asarray(m, np.float32).T).tobytes()


def _floor_vertices() -> np.ndarray:
    """(6, 9) two triangles of the floor square at z = FLOOR_Z, normal +z, white (tinted per view)."""
    h, z = _FLOOR_HALF, scene.FLOOR_Z
    corners = [(-h, -h), (h, -h), (h, h), (-h, -h), (h, h), (-h, h)]
    return np.array([(x, y, z, 0, 0, 1, 1, 1, 1) for x, y in corners], np.float32)


class Renderer:
    """Draws the 3DIEBench scene around one uploaded mesh.

    Args:
        size: output side in pixels (square images).
        samples: MSAA samples (0 or 1 turns anti-aliasing off).
        shadow_size: side of the shadow map; default `max(256, 2 * size)`.
        ctx: an existing moderngl context; default `create_context()`.

    Example:
        r = Renderer(64)
        r.set_mesh(vertex_data)                    # (N, 9) float32, see VERTEX_FORMAT
        pixels = r.render(latent)                  # (64, 64, 3) uint8, row 0 at the top
    """

    def __init__(self, size: int, samples: int = 4, shadow_size: int | None = None, ctx=None):
        if size < 8:
            raise ValueError(f"Renderer needs size >= 8. Received: size={size}")
        self.size, self.samples = size, samples
        self.ctx = ctx if ctx is not None else create_context()
        import moderngl

        ctx = self.ctx
        samples = samples if samples > 1 else 0
        self._msaa = ctx.framebuffer(
            ctx.renderbuffer((size, size), 4, samples=samples), ctx.depth_renderbuffer((size, size), samples=samples)
        )
        self._resolve = ctx.framebuffer(ctx.renderbuffer((size, size), 4)) if samples else self._msaa
        shadow_size = shadow_size or max(256, 2 * size)
        self._shadow_tex = ctx.depth_texture((shadow_size, shadow_size))
        self._shadow_tex.compare_func = "<="
        self._shadow_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)  # 2x2 PCF
        self._shadow_tex.repeat_x = self._shadow_tex.repeat_y = False
        self._shadow_fbo = ctx.framebuffer(depth_attachment=self._shadow_tex)
        self._prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._depth_prog = ctx.program(vertex_shader=_DEPTH_VERTEX, fragment_shader=_DEPTH_FRAGMENT)
        self._floor_vbo = ctx.buffer(_floor_vertices().tobytes())
        self._floor = ctx.vertex_array(
            self._prog, [(self._floor_vbo, VERTEX_FORMAT, "in_pos", "in_normal", "in_color")]
        )
        self._mesh = self._mesh_depth = self._mesh_vbo = None

        eye = scene.camera_position()
        view_proj = scene.perspective(scene.CAMERA_FOV_Y, 1.0, 0.5, 20.0) @ scene.look_at(eye)
        p = self._prog
        p["u_viewproj"].write(_mat(view_proj))
        p["u_eye"].value = tuple(eye)
        p["u_cos_outer"].value = math.cos(scene.SPOT_HALF_ANGLE)
        p["u_cos_inner"].value = math.cos(scene.SPOT_HALF_ANGLE * (1 - scene.SPOT_BLEND))
        sun = np.asarray(SUN_DIRECTION) / np.linalg.norm(SUN_DIRECTION)
        p["u_sun_dir"].value = tuple(sun)
        p["u_sun"].value = SUN_INTENSITY
        p["u_ambient"].value = AMBIENT
        p["u_shininess"].value = 40.0
        p["u_specular"].value = 0.35
        p["u_shadow"].value = 0
        self._light_proj = scene.perspective(2.4 * scene.SPOT_HALF_ANGLE, 1.0, 1.0, 12.0)

    def set_mesh(self, vertex_data: np.ndarray) -> None:
        """Uploads an object: (N, 9) float32 rows (position, normal, sRGB colour), N a multiple of 3."""
        data = np.ascontiguousarray(vertex_data, np.float32)
        if data.ndim != 2 or data.shape[1] != 9 or data.shape[0] % 3 or not len(data):
            raise ValueError(f"vertex data must be (3 * num_triangles, 9) float32. Received shape {data.shape}")
        self._release_mesh()
        self._mesh_vbo = self.ctx.buffer(data.tobytes())
        self._mesh = self.ctx.vertex_array(
            self._prog, [(self._mesh_vbo, VERTEX_FORMAT, "in_pos", "in_normal", "in_color")]
        )
        self._mesh_depth = self.ctx.vertex_array(self._depth_prog, [(self._mesh_vbo, "3f 24x", "in_pos")])

    def render(self, latent: np.ndarray) -> np.ndarray:
        """Draws one view of the uploaded mesh.

        Args:
            latent: (7,) see `scene` (rotation, floor hue, spot theta/phi, spot hue).

        Returns:
            (size, size, 3) uint8 sRGB, row 0 at the top.
        """
        if self._mesh is None:
            raise RuntimeError("Renderer.render: call set_mesh first")
        lat = np.asarray(latent, np.float64)
        model = np.eye(4)
        model[:3, :3] = scene.euler_to_matrix(lat[:3])
        spot = scene.spot_position(lat[4], lat[5])
        light_viewproj = self._light_proj @ scene.look_at(spot)
        ctx = self.ctx

        # 1. shadow map: the object's depth seen from the spot light
        self._shadow_fbo.use()
        self._shadow_fbo.clear(depth=1.0)
        ctx.enable_only(ctx.DEPTH_TEST)
        self._depth_prog["u_mvp"].write(_mat(light_viewproj @ model))
        self._mesh_depth.render()

        # 2. the scene from the camera
        self._msaa.use()
        self._msaa.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        self._shadow_tex.use(location=0)
        p = self._prog
        p["u_light_viewproj"].write(_mat(light_viewproj))
        p["u_spot_pos"].value = tuple(spot)
        p["u_spot_dir"].value = tuple(-spot / np.linalg.norm(spot))
        p["u_spot_color"].value = tuple(scene.light_color(lat[6]) ** 2.2 * SPOT_INTENSITY)
        p["u_model"].write(_mat(np.eye(4)))
        p["u_tint"].value = tuple(scene.floor_color(lat[3]))
        self._floor.render()
        p["u_model"].write(_mat(model))
        p["u_tint"].value = (1.0, 1.0, 1.0)
        self._mesh.render()
        if self._resolve is not self._msaa:
            ctx.copy_framebuffer(self._resolve, self._msaa)
        raw = self._resolve.read(components=3, alignment=1)
        return np.frombuffer(raw, np.uint8).reshape(self.size, self.size, 3)[::-1]

    def _release_mesh(self) -> None:
        for obj in (self._mesh, self._mesh_depth, self._mesh_vbo):
            if obj is not None:
                obj.release()
        self._mesh = self._mesh_depth = self._mesh_vbo = None

    def release(self) -> None:
        """Frees the GL objects and the context."""
        self._release_mesh()
        self.ctx.release()


def configure_llvmpipe(threads: int = 1) -> None:
    """Caps Mesa's software rasteriser at `threads` threads (call before `create_context`).

    Parallelism comes from one process per core; llvmpipe's own threads would oversubscribe them.
    An LP_NUM_THREADS already in the environment wins.
    """
    os.environ.setdefault("LP_NUM_THREADS", str(threads))
