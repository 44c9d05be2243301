# Sourced by the consumer scripts. fresh_project DIR NAME PACKAGES REFERENCES writes a console project DIR/NAME.csproj
# outside the repository: net10.0, the PackageReference lines REFERENCES, and a NuGet.config that adds the local folder
# PACKAGES to the sources the machine already has (settings only: no <clear/>, no hosts named). Empty Directory.*
# files stop MSBuild's search for the repository's own above the temporary folder.
fresh_project() {
  local dir=$1 name=$2 packages=$3 references=$4
  mkdir -p "$dir"
  cat > "$dir/NuGet.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="mlnet-lora-local" value="$packages" />
  </packageSources>
</configuration>
XML
  for file in Directory.Build.props Directory.Build.targets Directory.Packages.props; do echo '<Project />' > "$dir/$file"; done
  cat > "$dir/$name.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <NoWarn>\$(NoWarn);NU1603</NoWarn>
  </PropertyGroup>
  <ItemGroup>
$references
  </ItemGroup>
</Project>
XML
}
