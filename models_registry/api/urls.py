from rest_framework.routers import SimpleRouter

from .views import BaseModelViewSet, CategoryViewSet, ModelVersionViewSet

router = SimpleRouter(trailing_slash=False)
router.register("base-models", BaseModelViewSet, basename="base-model")
router.register("categories", CategoryViewSet, basename="category")
router.register("model-versions", ModelVersionViewSet, basename="model-version")

urlpatterns = router.urls
